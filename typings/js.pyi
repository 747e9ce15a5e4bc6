"""The names lsmigrate.browser.page takes from Pyodide's `js` module (the page's globals), typed as
Pyodide hands them over: JS strings as str, null as None."""

class Storage:
    """Window.localStorage (Web Storage API)."""

    @property
    def length(self) -> int: ...
    def key(self, index: int, /) -> str | None: ...
    def getItem(self, key: str, /) -> str | None: ...
    def setItem(self, key: str, value: str, /) -> None: ...
    def removeItem(self, key: str, /) -> None: ...

class Navigator:
    """Window.navigator."""

    @property
    def onLine(self) -> bool: ...

localStorage: Storage
navigator: Navigator
