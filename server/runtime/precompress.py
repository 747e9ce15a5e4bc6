"""The command that builds the runtime's compressed copies (`precompressed.build`), run by scripts/bootstrap.sh:

    python -m lsmigrate.server.runtime.precompress [--pyodide-dir DIR] [--out DIR]

The folders default to the settings PYODIDE_DIR and PYODIDE_PRECOMPRESSED_DIR, read from the environment
(`LSMIGRATE_*`) as the server reads them, else node_modules/pyodide and node_modules/.lsmigrate-precompressed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from lsmigrate.server.config import pyodide_folders
from lsmigrate.server.runtime.precompressed import build, codings


def main(argv: list[str] | None = None) -> int:
    """The command line: build the copies, say what was written and how long it took."""
    parser = argparse.ArgumentParser(
        prog="python -m lsmigrate.server.runtime.precompress",
        description="Compress the Pyodide runtime's files (gzip, and brotli where installed) for lsmigrate.",
    )
    parser.add_argument("--pyodide-dir", default=os.environ.get("LSMIGRATE_PYODIDE_DIR"), help="the npm package")
    parser.add_argument("--out", default=os.environ.get("LSMIGRATE_PYODIDE_PRECOMPRESSED_DIR"), help="the copies")
    arguments = parser.parse_args(argv)
    pyodide_dir, out_dir = pyodide_folders(arguments.pyodide_dir, arguments.out)
    started = time.perf_counter()
    written = build(Path(pyodide_dir), Path(out_dir))
    elapsed = time.perf_counter() - started
    if written:
        print(f"precompressed {len(written)} files into {out_dir} in {elapsed:.1f} s: {', '.join(written)}")
    if "br" not in codings():
        print("the brotli package is not installed: gzip only", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
