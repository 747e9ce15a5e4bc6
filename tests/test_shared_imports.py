"""lsmigrate.shared runs in the page: it imports with no server or browser package installed."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

BLOCKED = ["flask", "flask_sqlalchemy", "sqlalchemy", "psycopg", "redis", "werkzeug", "js", "pyodide"]

SCRIPT = textwrap.dedent(
    """
    import importlib
    import importlib.abc
    import json
    import pkgutil
    import sys

    BLOCKED = set(json.loads(sys.argv[1]))


    class Blocker(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{name} is blocked")
            return None


    sys.meta_path.insert(0, Blocker())
    try:
        import flask  # noqa: F401
    except ImportError:
        blocked = True
    else:
        blocked = False

    import lsmigrate.shared

    imported = []
    for module in pkgutil.walk_packages(lsmigrate.shared.__path__, "lsmigrate.shared."):
        importlib.import_module(module.name)
        imported.append(module.name)
    loaded = sorted(name for name in sys.modules if name.split(".")[0] in BLOCKED)
    print(json.dumps({"blocked": blocked, "imported": imported, "loaded": loaded}))
    """
)


def test_shared_imports_without_server_or_browser_packages() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(BLOCKED)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["blocked"], "the blocker let flask through"
    assert report["loaded"] == []
    for module in (
        "canonical",
        "catalog",
        "envelopes",
        "fields",
        "keys",
        "mapping",
        "paths",
        "shapes",
        "stores",
        "snapshot",
    ):
        assert f"lsmigrate.shared.{module}" in report["imported"]
