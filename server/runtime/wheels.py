"""Pure-Python wheels for the page, built in memory.

The page needs two wheels: lsmigrate's browser side (`lsmigrate.shared` and
`lsmigrate.browser`, from this checkout, so an edit shows on the next page
load) and marshmallow (from the installed distribution, so the browser runs
exactly the version the server validates with). Entries carry a fixed date,
so the same files always give the same bytes and the same URL. They are
stored uncompressed: the server sends them brotli- or gzip-compressed.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import io
import re
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import marshmallow

_FIXED_DATE = (2020, 1, 1, 0, 0, 0)
# Two levels above server/runtime/: the checkout, or the installed lsmigrate/ (shared/ and browser/ beside server/).
_LSMIGRATE_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Wheel:
    """A built wheel: its file name, bytes, and a short content hash for its URL."""

    filename: str
    content: bytes

    @property
    def content_hash(self) -> str:
        """The first 16 hex digits of the wheel's sha256."""
        return hashlib.sha256(self.content).hexdigest()[:16]


def _record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode("ascii")
    return f"{path},sha256={digest},{len(data)}"


def _package_files(import_path: str, folder: Path) -> list[tuple[str, bytes]]:
    prefix = import_path.replace(".", "/")
    return [
        (f"{prefix}/{source.relative_to(folder).as_posix()}", source.read_bytes())
        for source in sorted(folder.rglob("*.py"))
        if "__pycache__" not in source.parts
    ]


def build_wheel(name: str, version: str, packages: dict[str, Path], metadata_text: str) -> Wheel:
    """A py3-none-any wheel holding the .py files of each `{import path: folder}`."""
    files: list[tuple[str, bytes]] = []
    for import_path, folder in sorted(packages.items()):
        files.extend(_package_files(import_path, folder))
    return _wheel(name, version, files, metadata_text)


def _wheel(name: str, version: str, files: list[tuple[str, bytes]], metadata_text: str) -> Wheel:
    files = list(files)
    dist_info = f"{name}-{version}.dist-info"
    files.append((f"{dist_info}/METADATA", metadata_text.encode("utf-8")))
    files.append(
        (
            f"{dist_info}/WHEEL",
            b"Wheel-Version: 1.0\nGenerator: lsmigrate\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
    )
    record = "\n".join(_record_line(path, data) for path, data in files) + f"\n{dist_info}/RECORD,,\n"
    files.append((f"{dist_info}/RECORD", record.encode("utf-8")))

    # Stored, not deflated: the wheel goes out brotli- or gzip-compressed whole (`wheel_file`), which compresses
    # across files what deflate compresses file by file: lsmigrate's and marshmallow's 116 KB deflated are
    # 84 KB as brotli of the stored archive.
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for path, data in files:
            info = zipfile.ZipInfo(path, date_time=_FIXED_DATE)
            info.compress_type = zipfile.ZIP_STORED
            archive.writestr(info, data)
    return Wheel(f"{name}-{version}-py3-none-any.whl", buffer.getvalue())


def stores_wheel(module_name: str) -> Wheel:
    """The integrator's stores module (or package) as a wheel of its own, installed in the page beside lsmigrate's.

    Only that module goes in, so none of the app's other code is served: its parent packages get empty
    `__init__.py` files (namespace packages none), and the module may import only the standard library,
    marshmallow, lsmigrate.shared and its own package.
    """
    module = importlib.import_module(module_name)
    origin = Path(module.__file__ or "")
    parts = module_name.split(".")
    if origin.name == "__init__.py":
        files = _package_files(module_name, origin.parent)
    else:
        files = [("/".join(parts) + ".py", origin.read_bytes())]
    for depth in range(1, len(parts)):
        parent = importlib.import_module(".".join(parts[:depth]))
        if getattr(parent, "__file__", None):  # a regular package; a namespace package has no __init__
            files.append(("/".join(parts[:depth]) + "/__init__.py", b""))
    name = "lsmigrate_stores_" + re.sub(r"\W", "_", module_name)
    return _wheel(name, "1.0", sorted(files), f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")


def browser_wheels() -> list[Wheel]:
    """The wheels the page loads: marshmallow, then lsmigrate's browser side."""
    lsmigrate_version = metadata.version("lsmigrate")
    marshmallow_dist = metadata.distribution("marshmallow")
    return [
        build_wheel(
            "marshmallow",
            marshmallow_dist.version,
            {"marshmallow": Path(marshmallow.__file__).parent},
            marshmallow_dist.read_text("METADATA") or "",
        ),
        build_wheel(
            "lsmigrate",
            lsmigrate_version,
            {
                "lsmigrate.shared": _LSMIGRATE_ROOT / "shared",
                "lsmigrate.browser": _LSMIGRATE_ROOT / "browser",
            },
            f"Metadata-Version: 2.1\nName: lsmigrate\nVersion: {lsmigrate_version}\nRequires-Dist: marshmallow\n",
        ),
    ]
