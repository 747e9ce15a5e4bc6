"""Finding the integrator's stores: what LSMIGRATE_STORES (or `LSMigrate(stores=...)`) names.

A catalog is given as
    a `StoreCatalog`, or a sequence of `StoreSpec`s;
    "package.module:ATTRIBUTE", naming one of those in an importable module
        (schemas, upgrades and custom fields in Python; the page installs the
        module in a wheel of its own, so it may import only the standard library,
        marshmallow, lsmigrate.shared and its own package);
    the path of a `.json` or `.toml` file in the declarative format of
        `lsmigrate.shared.declared`.
Anything else is a `CatalogError` naming what was given and what was expected.
"""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeGuard

from lsmigrate.shared.declared import CatalogError, catalog_from_file, catalog_from_text
from lsmigrate.shared.stores import StoreCatalog, StoreSpec

_REFERENCE = re.compile(r"(?P<module>[A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)*):(?P<attribute>[A-Za-z_]\w*)")
FILE_SUFFIXES = (".json", ".toml")
CatalogSource = StoreCatalog | Sequence[StoreSpec] | str | Path


def as_catalog(value: Any, what: str) -> StoreCatalog:
    """`value` as a StoreCatalog: a catalog as is, a sequence of StoreSpecs in one; CatalogError otherwise."""
    if isinstance(value, StoreCatalog):
        return value
    if isinstance(value, list | tuple) and value and all(isinstance(spec, StoreSpec) for spec in value):
        try:
            return StoreCatalog(value)
        except ValueError as error:
            raise CatalogError(f"{what}: {error}") from error
    raise CatalogError(
        f"{what}: expected a StoreCatalog or a non-empty sequence of StoreSpec, found {type(value).__name__}"
    )


def module_reference(source: Any) -> tuple[str, str] | None:
    """(module, attribute) when `source` is a "package.module:ATTRIBUTE" reference, else None."""
    if not isinstance(source, str):
        return None
    match = _REFERENCE.fullmatch(source.strip())
    return None if match is None else (match["module"], match["attribute"])


def is_file_reference(source: Any) -> TypeGuard[str | Path]:
    """True when `source` names a declarative catalog file (by its suffix)."""
    return isinstance(source, str | Path) and Path(source).suffix.lower() in FILE_SUFFIXES


def load_catalog(source: CatalogSource) -> StoreCatalog:
    """The catalog `source` names (see the module docstring); CatalogError with what went wrong."""
    if isinstance(source, StoreCatalog | list | tuple):
        return as_catalog(source, "stores")
    if is_file_reference(source):
        return catalog_from_file(source)
    reference = module_reference(source)
    if reference is None:
        raise CatalogError(
            f"stores: expected 'package.module:ATTRIBUTE' or the path of a .json or .toml file, found {source!r}"
        )
    module_name, attribute = reference
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise CatalogError(f"stores {source!r}: cannot import {module_name}: {error}") from error
    if not hasattr(module, attribute):
        raise CatalogError(f"stores {source!r}: {module_name} has no attribute {attribute!r}")
    return as_catalog(getattr(module, attribute), f"stores {source!r}")


def catalog_reference(source: CatalogSource) -> str | Path:
    """How the page can load `source`: itself when it is a reference or a file, else the
    "module:ATTRIBUTE" under which a loaded module holds that very catalog; CatalogError when none does."""
    if isinstance(source, str | Path):
        return source
    for name, module in list(sys.modules.items()):
        for attribute, value in list(vars(module).items()) if module is not None else ():
            if value is source and not attribute.startswith("_"):
                return f"{name}:{attribute}"
    raise CatalogError(
        "stores: the page must load the same catalog, but this one is no module's attribute: pass it as "
        "'package.module:ATTRIBUTE' (or a .json/.toml file)"
    )


def page_descriptor(source: CatalogSource) -> dict[str, str]:
    """What the loader hands the page for `source`: {"module": "pkg.mod:ATTR"} (its wheel installed) or
    {"file": name, "text": the file's text} (a declarative catalog travels in the loader's configuration)."""
    reference = catalog_reference(source)
    if is_file_reference(reference):
        path = Path(reference)
        return {"file": path.name, "text": path.read_text(encoding="utf-8")}
    return {"module": str(reference)}


def catalog_from_descriptor(descriptor: dict[str, str]) -> StoreCatalog:
    """The page's side of `page_descriptor`: the same catalog, rebuilt in the browser."""
    if "file" in descriptor:
        return catalog_from_text(descriptor["text"], Path(descriptor["file"]).suffix, descriptor["file"])
    return load_catalog(descriptor["module"])
