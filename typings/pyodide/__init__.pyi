"""Pyodide's package, present only under Pyodide: the submodules lsmigrate.browser.page imports."""
