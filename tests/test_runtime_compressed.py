"""The runtime served precompressed (issue 14): the copies built at install time, the coding chosen by
Accept-Encoding, an ETag per representation, immutable caching, and the uncompressed file when a copy is missing."""

from __future__ import annotations

import gzip
import io
import json
import logging
import os
import random
import zipfile
from pathlib import Path

import brotli
import pytest
from flask import Flask
from flask.testing import FlaskClient

from lsmigrate.server import create_app
from lsmigrate.server.config import DEFAULTS
from lsmigrate.server.runtime import STATIC_DIR, precompressed
from lsmigrate.server.runtime.negotiation import choose_coding
from lsmigrate.server.runtime.precompress import main
from lsmigrate.server.runtime.precompressed import PYODIDE_FILES, REPACKED, build
from tests.test_runtime import loader_config

VERSION = "0.0.0-test"
BASE = f"/lsmigrate/pyodide/{VERSION}/"
ACCEPT_ALL = "gzip, deflate, br, zstd"  # what Chromium sends
DECODE = {"br": brotli.decompress, "gzip": gzip.decompress, "identity": bytes}


def _stdlib_zip(text: bytes) -> bytes:
    """A stdlib zip as npm's: each module deflated."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for n in range(20):
            archive.writestr(f"lib/module{n}.py", text[n * 100 :] + b"\n")
    return out.getvalue()


def _package(folder: Path) -> dict[str, bytes]:
    """A Pyodide npm package in miniature: the runtime's files (compressible, all different), and one more."""
    rng = random.Random(14)
    words = [f"name{n}" for n in range(300)]
    text = " ".join(rng.choice(words) for _ in range(8000)).encode()
    files = {
        "pyodide.mjs": b"export const loadPyodide = () => {};\n" + text,
        "pyodide.asm.mjs": b"var createPyodideModule = (() => {\n" + text[::-1],
        "pyodide.asm.wasm": b"\0asm\x01\0\0\0" + bytes(rng.randrange(16) for _ in range(60_000)),
        "python_stdlib.zip": _stdlib_zip(text),
        "pyodide-lock.json": json.dumps({"packages": {word: {"version": "1.0"} for word in words}}).encode(),
        "console.html": b"<script src='https://cdn.example/jquery.js'></script>" * 50,
    }
    folder.mkdir()
    (folder / "package.json").write_text(json.dumps({"name": "pyodide", "version": VERSION}))
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return files


@pytest.fixture
def package(tmp_path: Path) -> Path:
    """The miniature package's folder (PYODIDE_DIR)."""
    _package(tmp_path / "pyodide")
    return tmp_path / "pyodide"


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """Where the copies go (PYODIDE_PRECOMPRESSED_DIR)."""
    return tmp_path / "copies"


def _app(tmp_path: Path, package: Path, out: Path | int | None) -> Flask:
    return create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'app.sqlite'}",
            "SECRET_KEY": "vQ3r9LmX2pT7sW4yB8nD1fH6jK0cZ5aE",
            "DEMO": True,
            "PYODIDE_DIR": str(package),
            "PYODIDE_PRECOMPRESSED_DIR": str(out) if isinstance(out, Path) else out,
        }
    )


@pytest.fixture
def runtime(tmp_path: Path, package: Path, out: Path) -> FlaskClient:
    """A client of an app serving the miniature package, its copies built (for tests that change them)."""
    build(package, out)
    return _app(tmp_path, package, out).test_client()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> tuple[FlaskClient, Path]:
    """One such client for the module's tests that only read, and its package."""
    folder = tmp_path_factory.mktemp("served")
    _package(folder / "pyodide")
    build(folder / "pyodide", folder / "copies")
    return _app(folder, folder / "pyodide", folder / "copies").test_client(), folder / "pyodide"


def _get(client: FlaskClient, name: str, accept: str | None, **headers: str) -> tuple[int, dict[str, str], bytes]:
    if accept is not None:
        headers["Accept-Encoding"] = accept
    with client.get(BASE + name, headers=headers) as response:
        return response.status_code, dict(response.headers), response.get_data()


# --- the build --------------------------------------------------------------------------------------------


def test_the_build_writes_a_gzip_and_a_brotli_copy_of_each_runtime_file(package: Path, out: Path) -> None:
    written = build(package, out)
    runtime_files = sorted(name for name in os.listdir(package) if name in PYODIDE_FILES)
    expected = [f"{name}{suffix}" for name in runtime_files for suffix in (".br", ".gz")]
    assert sorted(written) == sorted([*expected, *REPACKED])
    for name in runtime_files:
        source = (out / VERSION / name if name in REPACKED else package / name).read_bytes()
        assert gzip.decompress((out / VERSION / f"{name}.gz").read_bytes()) == source
        assert brotli.decompress((out / VERSION / f"{name}.br").read_bytes()) == source


def test_the_stdlib_is_served_repacked_its_entries_stored_and_the_same(package: Path, out: Path) -> None:
    build(package, out)
    with (
        zipfile.ZipFile(package / "python_stdlib.zip") as npm,
        zipfile.ZipFile(out / VERSION / "python_stdlib.zip") as ours,
    ):
        assert [entry.filename for entry in ours.infolist()] == [entry.filename for entry in npm.infolist()]
        assert {entry.compress_type for entry in ours.infolist()} == {zipfile.ZIP_STORED}
        assert all(ours.read(name) == npm.read(name) for name in npm.namelist())
        assert [entry.date_time for entry in ours.infolist()] == [entry.date_time for entry in npm.infolist()]
    # Stored, the modules' repetitions are there for brotli to find: the copy is smaller than npm's zip.
    assert (out / VERSION / "python_stdlib.zip.br").stat().st_size < (package / "python_stdlib.zip").stat().st_size
    assert not (out / VERSION / "console.html.gz").exists()


def test_the_build_is_idempotent(package: Path, out: Path) -> None:
    build(package, out)
    folder = out / VERSION
    before = {path.name: path.stat().st_mtime_ns for path in folder.iterdir()}
    assert build(package, out) == []
    assert {path.name: path.stat().st_mtime_ns for path in folder.iterdir()} == before

    # The same bytes again with a new mtime (a new npm ci): hashed, nothing compressed.
    wasm = package / "pyodide.asm.wasm"
    os.utime(wasm, ns=(wasm.stat().st_atime_ns, wasm.stat().st_mtime_ns + 10**9))
    assert build(package, out) == []
    assert json.loads((folder / "manifest.json").read_text())["files"]["pyodide.asm.wasm"]["mtime_ns"] == (
        wasm.stat().st_mtime_ns
    )
    # Other bytes: that file's copies only. A copy deleted: that copy only.
    (package / "pyodide.mjs").write_bytes(b"export const changed = 1;\n" * 100)
    (folder / "python_stdlib.zip.br").unlink()
    assert sorted(build(package, out)) == ["pyodide.mjs.br", "pyodide.mjs.gz", "python_stdlib.zip.br"]
    assert gzip.decompress((folder / "pyodide.mjs.gz").read_bytes()) == (package / "pyodide.mjs").read_bytes()
    assert build(package, out) == []


def test_without_brotli_the_build_writes_gzip_only(package: Path, out: Path, monkeypatch) -> None:
    monkeypatch.setattr(precompressed, "brotli", None)
    assert all(name.endswith(".gz") or name in REPACKED for name in build(package, out))
    assert not list((out / VERSION).glob("*.br"))


def test_the_command_builds_then_has_nothing_to_do(package: Path, out: Path, capsys) -> None:
    assert main(["--pyodide-dir", str(package), "--out", str(out)]) == 0
    assert "precompressed 11 files" in capsys.readouterr().out  # 5 files, 2 codings, and the repacked stdlib
    assert main(["--pyodide-dir", str(package), "--out", str(out)]) == 0
    assert capsys.readouterr().out == ""


def test_the_copies_folder_is_a_strict_setting_beside_the_package_by_default(tmp_path: Path, package: Path) -> None:
    assert DEFAULTS["PYODIDE_PRECOMPRESSED_DIR"] is None
    with pytest.raises(ValueError, match="LSMIGRATE_PYODIDE_PRECOMPRESSED_DIR: expected the path of a folder"):
        _app(tmp_path, package, 5)
    settings = _app(tmp_path, package, None).extensions["lsmigrate"].settings
    assert settings["PYODIDE_PRECOMPRESSED_DIR"] == str(package.parent / ".lsmigrate-precompressed")


# --- at request time --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "coding"),
    [
        (None, "identity"),
        ("", "identity"),
        (ACCEPT_ALL, "br"),
        ("br", "br"),
        ("gzip", "gzip"),
        ("x-gzip", "gzip"),
        ("GZip;Q=1", "gzip"),
        ("br;q=0, gzip", "gzip"),
        ("gzip;q=0.5, br;q=0.8", "br"),
        ("br;q=0.5, gzip;q=0.9", "gzip"),
        ("gzip;q=0.5, identity", "identity"),
        ("*", "br"),
        ("br;q=0, *;q=0.5", "gzip"),
        ("identity", "identity"),
        ("identity;q=0, gzip;q=0.1", "gzip"),
        ("gzip;q=0, br;q=0", "identity"),
        ("*;q=0", "identity"),  # nothing acceptable: sent as it is rather than a 406
        ("deflate, zstd", "identity"),
        ("gzip;q=nonsense, br;q=0.1", "br"),
    ],
)
def test_the_coding_follows_accept_encoding(served: tuple[FlaskClient, Path], accept: str | None, coding: str):
    runtime, package = served
    status, headers, data = _get(runtime, "pyodide.asm.mjs", accept)
    assert status == 200
    assert headers.get("Content-Encoding") == (None if coding == "identity" else coding)
    assert DECODE[coding](data) == (package / "pyodide.asm.mjs").read_bytes()
    assert int(headers["Content-Length"]) == len(data)
    assert "Accept-Encoding" in headers["Vary"]
    assert headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert headers["Content-Type"].startswith("text/javascript")
    assert choose_coding(accept, ("br", "gzip", "identity")) == coding


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("pyodide.asm.wasm", "application/wasm"),
        ("pyodide.mjs", "text/javascript; charset=utf-8"),
        ("python_stdlib.zip", "application/zip"),
        ("pyodide-lock.json", "application/json"),
    ],
)
def test_every_file_keeps_its_type_in_every_coding(served: tuple[FlaskClient, Path], name: str, content_type):
    runtime, package = served
    for accept, coding in ((ACCEPT_ALL, "br"), ("gzip", "gzip"), (None, "identity")):
        status, headers, data = _get(runtime, name, accept)
        assert status == 200
        assert headers["Content-Type"] == content_type, (name, coding)
        served_as = package.parent / "copies" / VERSION / name if name in REPACKED else package / name
        assert DECODE[coding](data) == served_as.read_bytes(), (name, coding)


def test_each_representation_has_its_own_strong_etag_and_answers_304(served: tuple[FlaskClient, Path]) -> None:
    runtime = served[0]
    etags = {}
    for accept, coding in ((ACCEPT_ALL, "br"), ("gzip", "gzip"), ("identity", "identity")):
        _, headers, _ = _get(runtime, "pyodide.asm.wasm", accept)
        assert headers["ETag"].startswith('"') and not headers["ETag"].startswith("W/"), headers["ETag"]
        etags[coding] = headers["ETag"]
    assert len(set(etags.values())) == 3

    status, headers, data = _get(runtime, "pyodide.asm.wasm", ACCEPT_ALL, **{"If-None-Match": etags["br"]})
    assert (status, data) == (304, b"")
    assert headers["ETag"] == etags["br"] and "Accept-Encoding" in headers["Vary"]
    assert headers["Cache-Control"] == "public, max-age=31536000, immutable"
    # Another representation's tag is no match: the one chosen now goes out whole.
    status, headers, data = _get(runtime, "pyodide.asm.wasm", "gzip", **{"If-None-Match": etags["br"]})
    assert status == 200 and headers["ETag"] == etags["gzip"] and data
    status, _, _ = _get(runtime, "pyodide.asm.wasm", "gzip", **{"If-None-Match": f"{etags['br']}, {etags['gzip']}"})
    assert status == 304


def test_without_copies_the_file_goes_out_uncompressed_with_one_warning(
    tmp_path: Path, package: Path, out: Path, caplog
) -> None:
    client = _app(tmp_path, package, out).test_client()  # the build never ran
    with caplog.at_level(logging.WARNING, logger="lsmigrate.server.runtime.precompressed"):
        for _ in range(3):
            status, headers, data = _get(client, "pyodide.asm.wasm", ACCEPT_ALL)
            assert status == 200 and "Content-Encoding" not in headers
            assert data == (package / "pyodide.asm.wasm").read_bytes()
            assert headers["ETag"].startswith('"') and "Accept-Encoding" in headers["Vary"]
    assert [record.getMessage() for record in caplog.records if "pyodide.asm.wasm" in record.getMessage()] == [
        f"pyodide.asm.wasm is not precompressed in {out / VERSION} (or was built from other bytes): served "
        "uncompressed. Run `python -m lsmigrate.server.runtime.precompress` (scripts/bootstrap.sh does)."
    ]
    status, _, _ = _get(client, "pyodide.asm.wasm", None, **{"If-None-Match": headers["ETag"]})
    assert status == 304


def test_a_missing_copy_falls_back_to_the_next_coding(runtime: FlaskClient, out: Path, package: Path) -> None:
    (out / VERSION / "pyodide.mjs.br").unlink()
    status, headers, data = _get(runtime, "pyodide.mjs", ACCEPT_ALL)
    assert status == 200 and headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(data) == (package / "pyodide.mjs").read_bytes()
    (out / VERSION / "pyodide.mjs.gz").write_bytes(b"half a cop")
    status, headers, data = _get(runtime, "pyodide.mjs", ACCEPT_ALL)
    assert status == 200 and "Content-Encoding" not in headers
    assert data == (package / "pyodide.mjs").read_bytes()


@pytest.mark.parametrize("manifest", ["not json", '{"files": {"pyodide.mjs": 5}}', '{"files": {"pyodide.mjs": {}}}'])
def test_a_damaged_manifest_counts_as_no_build(runtime: FlaskClient, package: Path, out: Path, manifest: str) -> None:
    (out / VERSION / "manifest.json").write_text(manifest)
    status, headers, data = _get(runtime, "pyodide.mjs", ACCEPT_ALL)
    assert status == 200 and "Content-Encoding" not in headers
    assert data == (package / "pyodide.mjs").read_bytes()
    assert "pyodide.mjs.br" in build(package, out)
    status, headers, _ = _get(runtime, "pyodide.mjs", ACCEPT_ALL)
    assert headers["Content-Encoding"] == "br"


def test_copies_of_other_bytes_are_never_sent(runtime: FlaskClient, package: Path) -> None:
    # The package changed under the same version (another PYODIDE_DIR, a patched file): the copies are stale.
    (package / "pyodide-lock.json").write_bytes(b'{"packages": {}}' + b" " * 2000)
    status, headers, data = _get(runtime, "pyodide-lock.json", ACCEPT_ALL)
    assert status == 200 and "Content-Encoding" not in headers
    assert data == (package / "pyodide-lock.json").read_bytes()


def test_only_the_runtimes_files_are_served_whatever_the_coding(runtime: FlaskClient, out: Path) -> None:
    (out / VERSION / "console.html.br").write_bytes(brotli.compress(b"<html>"))
    for name in ("console.html", "console.html.br", "pyodide.mjs.br", "manifest.json", "package.json"):
        status, headers, _ = _get(runtime, name, ACCEPT_ALL)
        assert status == 404, name
    # Allowed, but not in this package: 404 too, never a 500.
    assert _get(runtime, "pyodide.asm.js", ACCEPT_ALL)[0] == 404


# --- the loader, the static scripts and the wheels: brotli or gzip, made once ----------------------------


@pytest.mark.parametrize(("accept", "coding"), [(ACCEPT_ALL, "br"), ("gzip", "gzip")])
@pytest.mark.parametrize("path", ["/lsmigrate/static/panel.js", "/lsmigrate/static/backups.js", "/lsmigrate/loader.js"])
def test_the_loader_and_static_scripts_go_out_compressed_when_accepted(
    client: FlaskClient, path: str, accept: str, coding: str
) -> None:
    plain = client.get(path)
    zipped = client.get(path, headers={"Accept-Encoding": accept})
    assert plain.status_code == zipped.status_code == 200
    assert "Content-Encoding" not in plain.headers and zipped.headers["Content-Encoding"] == coding
    inflate = brotli.decompress if coding == "br" else gzip.decompress
    assert inflate(zipped.get_data()) == plain.get_data()
    if path.startswith("/lsmigrate/static/"):
        assert plain.get_data() == (STATIC_DIR / path.rsplit("/", 1)[1]).read_bytes()
    for response in (plain, zipped):
        assert "Accept-Encoding" in response.headers["Vary"]
        assert response.headers["Cache-Control"] == "no-cache"
        assert response.mimetype == "text/javascript"
    assert plain.headers["ETag"] != zipped.headers["ETag"]
    again = client.get(path, headers={"Accept-Encoding": accept, "If-None-Match": zipped.headers["ETag"]})
    assert again.status_code == 304 and again.get_data() == b""


def test_the_wheels_are_stored_archives_sent_brotli_compressed_and_cached_for_good(client: FlaskClient) -> None:
    for url in loader_config(client)["wheels"]:
        plain = client.get(url)
        sent = client.get(url, headers={"Accept-Encoding": ACCEPT_ALL})
        assert sent.headers["Content-Encoding"] == "br"
        assert brotli.decompress(sent.get_data()) == plain.get_data()
        assert len(sent.get_data()) < 0.8 * len(zipfile_deflated(plain.get_data()))
        archive = zipfile.ZipFile(io.BytesIO(plain.get_data()))
        assert {entry.compress_type for entry in archive.infolist()} == {zipfile.ZIP_STORED}
        assert "immutable" in sent.headers["Cache-Control"] and "Accept-Encoding" in sent.headers["Vary"]


def zipfile_deflated(stored: bytes) -> bytes:
    """The same archive deflated entry by entry, as a wheel usually is."""
    source, buffer = zipfile.ZipFile(io.BytesIO(stored)), io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as target:
        for entry in source.infolist():
            target.writestr(entry, source.read(entry), compress_type=zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


def test_static_files_keep_their_types_and_404s(client: FlaskClient) -> None:
    with client.get("/lsmigrate/static/demo.css", headers={"Accept-Encoding": "gzip"}) as response:
        assert response.mimetype == "text/css"
    for path in ("nothing.js", "../runtime/__init__.py", "%2e%2e/page.py"):
        response = client.get(f"/lsmigrate/static/{path}", headers={"Accept-Encoding": "gzip"})
        assert response.status_code == 404, path
        assert response.json["error"]["code"] == "not_found"


def test_the_real_runtime_url_is_served(client: FlaskClient) -> None:
    # The real package, whether or not its copies are built here: the loader's URL answers in some coding.
    url = loader_config(client)["pyodide"] + "pyodide.mjs"
    pyodide_dir = Path(client.application.extensions["lsmigrate"].settings["PYODIDE_DIR"])
    with client.get(url, headers={"Accept-Encoding": ACCEPT_ALL}) as response:
        assert response.status_code == 200
        coding = response.headers.get("Content-Encoding", "identity")
        assert DECODE[coding](response.get_data()) == (pyodide_dir / "pyodide.mjs").read_bytes()
        assert "Accept-Encoding" in response.headers["Vary"]
