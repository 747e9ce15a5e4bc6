"""The Pyodide runtime's files compressed once, at install time, and found again at request time.

    python -m lsmigrate.server.runtime.precompress [--pyodide-dir DIR] [--out DIR]

(`build`) writes, for each file of `PYODIDE_FILES` in the pinned npm package, FILE.gz (gzip, level 9) and, where the
`brotli` package is installed, FILE.br (brotli, quality 11) into OUT/<version>/ (python_stdlib.zip first repacked
with its entries stored, itself kept there too: `REPACKED`), then OUT/<version>/manifest.json:
each source's size, mtime and sha256, each copy's level, size and sha256 (the sha256s give the strong ETags).
scripts/bootstrap.sh runs it after `npm ci`.

A second run finds every source as the manifest records it and does nothing but a stat per file; a source
with a new mtime and the same bytes (a new `npm ci` of the same package) is hashed again and its copies kept.
Brotli at quality 11 takes about 30 s for the 9.6 MB wasm on a 2-core machine, once per Pyodide version, for
a copy 12% smaller than at quality 9 (1.7 s): the files compress in threads, the largest first, so the rest
is done meanwhile.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import logging
import os
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

try:
    import brotli
except ImportError:  # an optional dependency: gzip alone then
    brotli = None

log = logging.getLogger(__name__)

#: The files of the Pyodide npm package the page's runtime loads; nothing else of the package is served (its
#: console.html, a REPL that would load jQuery from a CDN into the app's origin, least of all).
PYODIDE_FILES = frozenset(
    {"pyodide.mjs", "pyodide.js", "pyodide.asm.mjs", "pyodide.asm.js", "pyodide.asm.wasm", "python_stdlib.zip",
     "pyodide-lock.json"}
)  # fmt: skip
#: Each content coding built: the file name's suffix and the level (gzip) or quality (brotli); "identity" is a
#: repacked file's own bytes (below), kept beside its copies.
SUFFIXES = {"br": ".br", "gzip": ".gz", "identity": ""}
LEVELS = {"br": 11, "gzip": 9, "identity": 0}
#: Files served repacked: npm's python_stdlib.zip deflates each entry, which leaves brotli and gzip nothing to
#: find (2.55 MB, 2.49 MB as brotli); the same entries stored (not deflated) in the same order make a zip Pyodide
#: mounts alike, and that compresses to about 1.6 MB. The repacked zip is then the file, in every coding.
REPACKED = frozenset({"python_stdlib.zip"})
MANIFEST = "manifest.json"


@cache
def pyodide_version(pyodide_dir: str) -> str:
    """The version of the Pyodide npm package in `pyodide_dir`."""
    package = json.loads((Path(pyodide_dir) / "package.json").read_text())
    return str(package["version"])


@lru_cache(maxsize=4)
def lock_info(pyodide_dir: str) -> dict[str, Any]:
    """The `info` of the runtime's pyodide-lock.json (ABI, platform, Python): all a page that installs only
    lsmigrate's wheels by URL needs of the lock file, so the page is given it (`loader_config`) and never
    downloads the file's list of the 357 packages of Pyodide's CDN (22 KB brotli), none of which it loads."""
    info: dict[str, Any] = json.loads((Path(pyodide_dir) / "pyodide-lock.json").read_text())["info"]
    return info


def codings(name: str = "") -> tuple[str, ...]:
    """The content codings this installation builds for `name`: gzip, br when the brotli package is there, and
    the repacked file itself for a file that is repacked."""
    built = ("br", "gzip") if brotli is not None else ("gzip",)
    return (*built, "identity") if name in REPACKED else built


def repack(data: bytes) -> bytes:
    """A zip's entries stored instead of deflated, in the same order with the same names, times and modes."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as target:
        for info in source.infolist():
            entry = zipfile.ZipInfo(info.filename, date_time=info.date_time)
            entry.external_attr, entry.create_system = info.external_attr, info.create_system
            target.writestr(entry, source.read(info), compress_type=zipfile.ZIP_STORED)
    return out.getvalue()


def _compress(data: bytes, coding: str) -> bytes:
    if coding == "identity":
        return data
    if coding == "br":
        assert brotli is not None
        compressed: bytes = brotli.compress(data, quality=LEVELS["br"])
        return compressed
    return gzip.compress(data, compresslevel=LEVELS["gzip"], mtime=0)  # mtime 0: the same bytes every build


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _read_manifest(folder: Path) -> dict[str, Any]:
    try:
        files: dict[str, Any] = json.loads((folder / MANIFEST).read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return files


def _well_formed(entry: Any) -> bool:
    """True when `entry` has what a manifest entry holds (a damaged manifest counts as no build)."""
    return isinstance(entry, dict) and {"size", "mtime_ns", "sha256", "copies"} <= entry.keys()


def _write_atomically(path: Path, data: bytes) -> None:
    draft = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    draft.write_bytes(data)
    os.replace(draft, path)  # a server reading meanwhile sees the old file or the new one, never half of one


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def _write_copy(source: bytes, target: Path, coding: str) -> dict[str, Any]:
    data = _compress(source, coding)
    _write_atomically(target, data)
    return {"level": LEVELS[coding], "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def build(pyodide_dir: Path, out_dir: Path) -> list[str]:
    """Compress what is missing or out of date into `out_dir`/<version>/; the names of the copies written."""
    folder = out_dir / pyodide_version(str(pyodide_dir))
    folder.mkdir(parents=True, exist_ok=True)
    known = _read_manifest(folder)
    files: dict[str, Any] = {}
    jobs: list[tuple[str, str]] = []
    for name in sorted(PYODIDE_FILES):
        source = pyodide_dir / name
        if not source.is_file():
            continue
        stat = source.stat()
        entry: dict[str, Any] = known[name] if _well_formed(known.get(name)) else {}
        if (entry.get("size"), entry.get("mtime_ns")) != (stat.st_size, stat.st_mtime_ns):
            digest = _sha256(source)
            kept = entry.get("copies", {}) if entry.get("sha256") == digest else {}
            entry = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest, "copies": kept}
        files[name] = entry
        for coding in codings(name):
            copy = entry["copies"].get(coding) or {}
            target = folder / (name + SUFFIXES[coding])
            stale = copy.get("level") != LEVELS[coding] or copy.get("repacked", False) != (name in REPACKED)
            if stale or _size(target) != copy.get("size"):
                jobs.append((name, coding))
    jobs.sort(key=lambda job: files[job[0]]["size"], reverse=True)  # the longest first: it sets the wall time
    payloads: dict[str, bytes] = {}
    for name in {name for name, _ in jobs}:
        data = (pyodide_dir / name).read_bytes()
        payloads[name] = repack(data) if name in REPACKED else data

    def run(job: tuple[str, str]) -> dict[str, Any]:
        name, coding = job
        written = _write_copy(payloads[name], folder / (name + SUFFIXES[coding]), coding)
        return {**written, "repacked": True} if name in REPACKED else written

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:  # zlib and brotli release the GIL
        for (name, coding), copy in zip(jobs, pool.map(run, jobs), strict=True):
            files[name]["copies"][coding] = copy
    if jobs or files != known:
        _write_atomically(folder / MANIFEST, json.dumps({"files": files}, indent=1, sort_keys=True).encode())
    return [name + SUFFIXES[coding] for name, coding in jobs]


# --- at request time ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Copy:
    """One representation of a runtime file: the file holding it, its content coding, its strong ETag."""

    path: Path
    coding: str  # "br", "gzip" or "identity"
    etag: str


@lru_cache(maxsize=16)
def _manifest(path: Path, size: int, mtime_ns: int) -> dict[str, Any]:
    """The manifest at `path` as it was at this size and mtime (read again when it changes)."""
    return _read_manifest(path.parent)


@lru_cache(maxsize=32)
def _file_sha256(path: Path, size: int, mtime_ns: int) -> str:
    return _sha256(path)


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        log.warning(message)


def _entry(folder: Path, name: str) -> dict[str, Any] | None:
    """The manifest's entry for `name`, None when there is none (no build, another file, a damaged manifest)."""
    path = folder / MANIFEST
    try:
        stat = path.stat()
    except OSError:
        return None
    entry = _manifest(path, stat.st_size, stat.st_mtime_ns).get(name)
    return entry if _well_formed(entry) else None


def copies(pyodide_dir: str, out_dir: str, name: str) -> dict[str, Copy]:
    """The representations of the runtime file `name` by content coding: identity always, br and gzip when
    built from these very bytes. A copy missing or out of date is left out, with a warning (once)."""
    source = Path(pyodide_dir) / name
    stat = source.stat()
    folder = Path(out_dir) / pyodide_version(pyodide_dir)
    entry = _entry(folder, name)
    if entry is not None and entry["size"] == stat.st_size and entry["mtime_ns"] != stat.st_mtime_ns:
        if _file_sha256(source, stat.st_size, stat.st_mtime_ns) != entry["sha256"]:  # touched: the bytes decide
            entry = None
    if entry is None or entry["size"] != stat.st_size:
        _warn_once(
            f"{name} is not precompressed in {folder} (or was built from other bytes): served uncompressed. "
            "Run `python -m lsmigrate.server.runtime.precompress` (scripts/bootstrap.sh does)."
        )
        return {"identity": Copy(source, "identity", _file_sha256(source, stat.st_size, stat.st_mtime_ns)[:32])}
    found = {"identity": Copy(source, "identity", entry["sha256"][:32])}  # a repacked file's own copy replaces it
    for coding, copy in entry["copies"].items():
        path = folder / (name + SUFFIXES.get(coding, "?"))
        if coding in SUFFIXES and _size(path) == copy.get("size") and isinstance(copy.get("sha256"), str):
            found[coding] = Copy(path, coding, copy["sha256"][:32])
        else:
            _warn_once(f"{path} is missing or not the copy {MANIFEST} records: {name} is served without it.")
    return found
