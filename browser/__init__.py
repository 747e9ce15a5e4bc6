"""Python that runs in the page: the migration runner and its adapters over browser APIs.

Every module imports on plain CPython; only `page` touches `js`/`pyodide`,
and only when it runs under Pyodide.
"""
