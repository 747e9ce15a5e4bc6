"""pyodide.http as lsmigrate.browser.page uses it (Pyodide's FetchResponse and pyfetch)."""

from typing import Any

class FetchResponse:
    """The response of `pyfetch`, with the body converted to Python objects."""

    @property
    def headers(self) -> dict[str, str]: ...
    @property
    def status(self) -> int: ...
    async def string(self) -> str: ...

async def pyfetch(request: str, /, *, signal: Any = None, fetcher: Any = None, **kwargs: Any) -> FetchResponse: ...
