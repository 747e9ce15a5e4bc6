"""GET /api/migration/config: the limits, the protocol version, and the stores as this server applies them."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from lsmigrate.demo.stores import STORES
from lsmigrate.shared.canonical import digest
from lsmigrate.shared.protocol import PROTOCOL_VERSION
from tests.migration_helpers import API, batch_body, open_session, put

CONFIG = f"{API}/config"


def config(client: FlaskClient, headers: dict[str, str]) -> dict[str, Any]:
    response = client.get(CONFIG, headers=headers)
    assert response.status_code == 200, response.json
    answer: dict[str, Any] = response.json
    return answer


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer not-a-token"}], ids=["missing", "invalid"])
def test_the_config_needs_a_token(client, headers: dict[str, str]) -> None:
    response = client.get(CONFIG, headers=headers)
    assert response.status_code == 401
    assert set(response.json["error"]) == {"code", "message", "details"}


def test_the_answer_holds_the_protocol_version_the_limits_and_the_stores(app: Flask, client, auth) -> None:
    answer = config(client, auth("alice"))
    assert set(answer) == {"protocol_version", "limits", "stores_version", "stores", "user_digest"}
    assert answer["protocol_version"] == PROTOCOL_VERSION
    assert answer["limits"] == {
        "max_batch_records": app.config["MAX_BATCH_RECORDS"],
        "max_body_bytes": app.config["MAX_CONTENT_LENGTH"],
    }
    assert answer["stores"] == [spec.describe() for spec in STORES]
    # A client can check the version against the stores it was sent.
    assert answer["stores_version"] == digest(answer["stores"]) == STORES.version()


def test_the_user_digest_names_the_user_without_the_id(client, auth) -> None:
    alice = config(client, auth("alice"))["user_digest"]
    assert re.fullmatch("[0-9a-f]{64}", alice)
    assert alice == config(client, auth("alice"))["user_digest"]  # the same on every call, for a checkpoint to match
    assert alice != config(client, auth("bob"))["user_digest"]
    assert alice != hashlib.sha256(b"alice").hexdigest()  # salted: not the plain digest of the id either


def test_the_limits_are_the_apps_not_constants(make_app, auth) -> None:
    client = make_app(None, MAX_BATCH_RECORDS=2, MAX_CONTENT_LENGTH=4096).test_client()
    alice = auth("alice")
    assert config(client, alice)["limits"] == {"max_batch_records": 2, "max_body_bytes": 4096}
    # And they are the limits applied: one record past the announced count is refused.
    sid = open_session(client, alice, "tab-1")
    records = [{"id": f"task-{n}", "title": f"Task {n}"} for n in range(3)]
    response = put(client, alice, sid, 0, batch_body("task-store", records))
    assert (response.status_code, response.json["error"]["code"]) == (413, "too_many_records")
    assert put(client, alice, sid, 0, batch_body("task-store", records[:2])).status_code == 200


def test_a_policy_override_shows_and_changes_the_stores_version(app: Flask, client, auth, monkeypatch) -> None:
    alice = auth("alice")
    plain = config(client, alice)
    assert STORES.named("tasks").conflict_policy == "newest_wins"
    monkeypatch.setitem(app.config, "CONFLICT_POLICIES", {"tasks": "newest_wins"})
    assert config(client, alice) == plain  # an override that changes nothing changes no version
    monkeypatch.setitem(app.config, "CONFLICT_POLICIES", {"tasks": "ask"})
    asked = config(client, alice)
    policies = {store["name"]: store["conflict_policy"] for store in asked["stores"]}
    assert policies == {spec.name: "ask" if spec.name == "tasks" else spec.conflict_policy for spec in STORES}
    assert asked["stores_version"] != plain["stores_version"]
    assert asked["stores_version"] == digest(asked["stores"])


def test_the_stores_version_is_the_same_on_every_app_with_the_same_config(make_app, auth) -> None:
    alice = auth("alice")
    policies = {"environments": "keep_server"}
    first, second = (make_app(None, CONFLICT_POLICIES=policies).test_client() for _ in range(2))
    other = make_app(None, CONFLICT_POLICIES={"environments": "keep_local"}).test_client()
    versions = [config(client, alice)["stores_version"] for client in (first, second, other)]
    assert versions[0] == versions[1] != versions[2]


def test_the_readme_lists_the_call() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert "| `GET /config` |" in readme
