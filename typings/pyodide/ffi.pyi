"""pyodide.ffi as lsmigrate.browser.page uses it."""

class JsException(Exception):
    """A JavaScript error raised into Python (in Pyodide, also a JsProxy of the Error)."""
