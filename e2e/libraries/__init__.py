"""Real npm state libraries writing their own localStorage, for end-to-end tests.

Each scenario in `src/` is bundled by `scripts/bootstrap.sh test` (esbuild) into
`dist/<name>.js`, which sets `window.libraryScenario = {seed, boot}`: `seed()`
writes realistic state through the library's persistence API, `boot()` only
creates the stores, as a fresh app start would. `load_scenario` serves the
bundle on any origin through `page.route`, so the state lands in the
localStorage of the origin under test. OUTPUTS.md records what each writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

from playwright.sync_api import Page

DIST = Path(__file__).resolve().parent / "dist"
#: The scenarios, one per file in src/.
SCENARIOS = (
    "zustand",
    "redux-persist",
    "rtk-entity-adapter",
    "pinia",
    "jotai",
    "mobx",
    "tanstack-query",
    "superjson",
)


def load_scenario(page: Page, origin_url: str, name: str) -> None:
    """Open `origin_url`/library/`name`: a blank page of that origin running the scenario's bundle."""
    bundle = DIST / f"{name}.js"
    if not bundle.is_file():
        raise FileNotFoundError(f"{bundle} is missing: run scripts/bootstrap.sh test")
    url = f"{origin_url.rstrip('/')}/library/{name}"
    html = f'<!doctype html><meta charset="utf-8"><title>{name}</title><script src="{url}.js"></script>'
    page.route(lambda requested: requested == url, lambda route: route.fulfill(body=html, content_type="text/html"))
    page.route(
        lambda requested: requested == f"{url}.js",
        lambda route: route.fulfill(path=bundle, content_type="text/javascript"),
    )
    page.goto(url)
    if not page.evaluate("() => 'libraryScenario' in window"):
        raise RuntimeError(f"the {name} bundle did not set window.libraryScenario (see the browser console)")


def seed(page: Page) -> None:
    """Write the scenario's realistic state through its library and wait until it is persisted."""
    page.evaluate("() => window.libraryScenario.seed()")


def boot(page: Page) -> None:
    """Create the scenario's stores and let the library hydrate and re-persist, as an app start would."""
    page.evaluate("() => window.libraryScenario.boot()")


def local_storage(page: Page) -> dict[str, str]:
    """Every key and value in the page origin's localStorage."""
    items = page.evaluate(
        "() => Object.fromEntries(Array.from({length: localStorage.length}, (_, i) => localStorage.key(i))"
        ".map((key) => [key, localStorage.getItem(key)]))"
    )
    return cast(dict[str, str], items)
