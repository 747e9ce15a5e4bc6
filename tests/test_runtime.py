"""What the server hands the page: the loader, Pyodide files, and the wheels."""

from __future__ import annotations

import io
import json
import zipfile

from flask.testing import FlaskClient

from lsmigrate.demo.stores import DRAFT_KEY_PATTERN


def loader_config(client: FlaskClient) -> dict:
    source = client.get("/lsmigrate/loader.js").get_data(as_text=True)
    start = source.index("const CONFIG = ") + len("const CONFIG = ")
    return json.loads(source[start : source.index(";\n", start)])


def test_the_loader_names_the_store_keys_and_the_runtime(client) -> None:
    config = loader_config(client)
    assert config["keys"] == ["environments", "task-store", "user-preferences"]
    assert config["patterns"] == [DRAFT_KEY_PATTERN]
    assert config["pyodide"].startswith("/lsmigrate/pyodide/")
    wheels = [url.rsplit("/", 1)[1].split("-")[0] for url in config["wheels"]]
    assert wheels == ["marshmallow", "lsmigrate", "lsmigrate_stores_lsmigrate_demo_stores"]
    assert config["stores"] == {"module": "lsmigrate.demo.stores:STORES"}
    assert config["api"] == "/api/migration"


def test_wasm_is_served_as_application_wasm(client) -> None:
    with client.get(loader_config(client)["pyodide"] + "pyodide.asm.wasm") as response:
        assert response.status_code == 200
        assert response.mimetype == "application/wasm"
        assert response.data[:4] == b"\0asm"


def test_the_lsmigrate_wheel_holds_the_browser_side_only(client) -> None:
    url = loader_config(client)["wheels"][1]
    response = client.get(url)
    assert response.status_code == 200
    names = zipfile.ZipFile(io.BytesIO(response.data)).namelist()
    assert "lsmigrate/shared/mapping.py" in names
    assert "lsmigrate/browser/runner.py" in names
    assert not [name for name in names if name.startswith("lsmigrate/server")]
    assert client.get(url).data == response.data


def test_an_unknown_wheel_or_runtime_version_is_404(client) -> None:
    assert client.get("/lsmigrate/wheels/0000/lsmigrate-0.1.0-py3-none-any.whl").status_code == 404
    assert client.get("/lsmigrate/pyodide/0.0.1/pyodide.mjs").json["error"]["code"] == "not_found"


def test_the_cli_prints_a_token_the_api_accepts(runner, client) -> None:
    token = runner.invoke(args=["lsmigrate", "token", "carol"]).output.strip()
    response = client.get("/api/tasks", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.json == {"tasks": []}


def test_only_the_files_the_runtime_loads_are_served(client: FlaskClient) -> None:
    base = loader_config(client)["pyodide"]
    for name in ("pyodide.mjs", "pyodide.asm.mjs", "python_stdlib.zip", "pyodide-lock.json"):
        with client.get(base + name) as response:
            assert response.status_code == 200, name
    for name in ("console.html", "console-v2.html", "package.json", "pyodide.d.ts", "../../../etc/passwd"):
        with client.get(base + name) as response:
            assert response.status_code == 404, name


def test_every_lsmigrate_answer_carries_the_security_headers(client: FlaskClient, auth) -> None:
    answers = {
        "config": client.get("/api/migration/config", headers=auth("alice")),
        "refused": client.get("/api/migration/config"),
        "loader": client.get("/lsmigrate/loader.js"),
        "missing": client.get("/lsmigrate/static/nothing.js"),
    }
    for name, answer in answers.items():
        assert answer.headers["X-Content-Type-Options"] == "nosniff", name
        assert answer.headers["Referrer-Policy"] == "no-referrer", name
    assert answers["config"].headers["Cache-Control"] == "no-store"
    assert answers["loader"].headers["Cache-Control"] == "no-cache"
