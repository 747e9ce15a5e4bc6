"""CPython and Pyodide map the corpus (tests/corpus.py) to byte-identical canonical JSON.

The page boots Pyodide from the URLs the served loader names and calls
`map_snapshot_json` with one `pyimport`; the test calls the same function in
CPython and compares the UTF-8 bytes (a lone surrogate as its three bytes).
"""

from __future__ import annotations

import json
import re
import urllib.request
from typing import Any

import pytest
from playwright.sync_api import Page

from e2e.conftest import LiveServer
from lsmigrate.shared.snapshot import map_snapshot_json
from tests.corpus import MIGRATED_AT, USER_ID, snapshots

pytestmark = pytest.mark.e2e

# Boots Pyodide as browser/static/loader.js does, then maps every snapshot. The results go
# back through JSON.stringify, which escapes lone surrogates: a string holding one cannot
# cross from the page into the test as it is. The inputs are ASCII (json.dumps escapes).
MAP_IN_PYODIDE = """async ({ config, snapshots, userId, migratedAt }) => {
  const stores = JSON.stringify(config.stores);
  const { loadPyodide } = await import(config.pyodide + "pyodide.mjs");
  const pyodide = await loadPyodide({ indexURL: config.pyodide });
  await pyodide.loadPackage(config.wheels);
  const module = pyodide.pyimport("lsmigrate.shared.snapshot");
  try {
    const outputs = {};
    for (const [name, itemsJson] of Object.entries(snapshots)) {
      outputs[name] = JSON.stringify(module.map_snapshot_json(itemsJson, userId, migratedAt, stores));
    }
    return { platform: pyodide.runPython("import sys; sys.platform"), outputs };
  } finally {
    module.destroy();
  }
}"""
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
SHA256 = re.compile(r"[0-9a-f]{64}")


@pytest.fixture(scope="module")
def loader_config(live_server: LiveServer) -> dict[str, Any]:
    """The runtime URLs the served loader.js names: Pyodide's folder and the wheels."""
    return loader_config_of(live_server)


def loader_config_of(server: LiveServer) -> dict[str, Any]:
    """The configuration a server's loader.js carries: Pyodide's folder, the wheels, the stores."""
    with urllib.request.urlopen(f"{server.url}/lsmigrate/loader.js") as response:
        source = response.read().decode("utf-8")
    start = source.index("const CONFIG = ") + len("const CONFIG = ")
    config: dict[str, Any] = json.loads(source[start : source.index(";\n", start)])
    return config


def map_in_cpython(items: dict[str, str], stores: dict[str, str]) -> bytes:
    """The canonical output of a snapshot mapped here with the served catalog, as UTF-8 bytes."""
    return map_snapshot_json(json.dumps(items), USER_ID, MIGRATED_AT, json.dumps(stores)).encode(
        "utf-8", "surrogatepass"
    )


def map_in_pyodide(
    page: Page, server: LiveServer, config: dict[str, Any], named: dict[str, dict[str, str]]
) -> dict[str, bytes]:
    """The canonical output of each snapshot mapped by Pyodide in the page, as UTF-8 bytes."""
    page.goto(f"{server.url}/lsmigrate/static/demo.css")
    result = page.evaluate(
        MAP_IN_PYODIDE,
        {
            "config": config,
            "snapshots": {name: json.dumps(items) for name, items in named.items()},
            "userId": USER_ID,
            "migratedAt": MIGRATED_AT,
        },
    )
    assert result["platform"] == "emscripten"  # the page's Python, not this process's
    return {name: json.loads(text).encode("utf-8", "surrogatepass") for name, text in result["outputs"].items()}


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=True)
    return text if len(text) <= 200 else f"{text[:200]}… ({len(text)} characters)"


def _first_difference(left: Any, right: Any, path: str) -> tuple[str, Any, Any] | None:
    if type(left) is not type(right):
        return path, left, right
    if isinstance(left, dict):
        for name in sorted(set(left) | set(right)):
            if name not in left or name not in right:
                return f"{path}[{name!r}]", left.get(name, "<absent>"), right.get(name, "<absent>")
            found = _first_difference(left[name], right[name], f"{path}[{name!r}]")
            if found:
                return found
        return None
    if isinstance(left, list):
        for index, (left_item, right_item) in enumerate(zip(left, right, strict=False)):
            found = _first_difference(left_item, right_item, f"{path}[{index}]")
            if found:
                return found
        return None if len(left) == len(right) else (f"len({path})", len(left), len(right))
    return None if left == right else (path, left, right)


def describe_difference(name: str, cpython: bytes, pyodide: bytes) -> str:
    """Where two canonical outputs first differ: the key, the record and the field, never the whole output."""
    left = json.loads(cpython.decode("utf-8", "surrogatepass"))
    right = json.loads(pyodide.decode("utf-8", "surrogatepass"))
    found = _first_difference(left, right, "output")
    if found is None:
        offset = next(i for i, (a, b) in enumerate(zip(cpython, pyodide, strict=False)) if a != b)
        return f"{name}: same JSON value, different bytes from offset {offset}: {cpython[offset - 40 : offset + 40]!r}"
    path, cpython_value, pyodide_value = found
    return f"{name}: first difference at {path}\n  CPython: {_short(cpython_value)}\n  Pyodide: {_short(pyodide_value)}"


def coverage(output: bytes) -> dict[str, int]:
    """What a canonical snapshot output holds that the comparison covers: records, ids, digests, manifests."""
    mapped = json.loads(output.decode("utf-8", "surrogatepass"))
    counts = {"records": 0, "ids": 0, "digests": 0, "manifests": 0, "quarantined": 0, "errors": 0, "unknown": 0}
    counts["unknown"] = len(mapped["unknown"])
    for entry in mapped["keys"].values():
        if "error" in entry:
            counts["errors"] += 1
            continue
        records = [record for run in entry["records"].values() for record in run]  # each store's, in key order
        assert entry["manifest"]["count"] == len(records) and SHA256.fullmatch(entry["manifest"]["digest"])
        counts["manifests"] += 1
        for record in records:
            counts["records"] += 1
            counts["digests"] += bool(SHA256.fullmatch(record["digest"]))
            if record["row"] is None:
                counts["quarantined"] += 1
            else:
                counts["ids"] += bool(UUID.fullmatch(record["row"]["id"]))
    return counts


def test_cpython_and_pyodide_map_the_corpus_byte_identically(
    page: Page, live_server: LiveServer, loader_config: dict[str, Any]
) -> None:
    named = snapshots()
    cpython = {name: map_in_cpython(items, loader_config["stores"]) for name, items in named.items()}
    main, failing = coverage(cpython["main"]), coverage(cpython["failing"])
    # What the comparison covers: every record's digest, every row's id, every key's manifest.
    assert main["records"] >= 300
    assert main["digests"] == main["records"]
    assert main["ids"] == main["records"] - main["quarantined"]
    assert main["ids"] > 250 and main["quarantined"] > 0
    assert main["manifests"] >= 4 and main["errors"] >= 1 and main["unknown"] >= 3
    assert failing["errors"] == len(named["failing"])

    pyodide = map_in_pyodide(page, live_server, loader_config, named)

    assert pyodide.keys() == cpython.keys()
    for name in named:
        # A bool, so that pytest does not print its own diff of megabytes beside the message.
        identical = pyodide[name] == cpython[name]
        assert identical, describe_difference(name, cpython[name], pyodide[name])
