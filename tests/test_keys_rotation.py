"""Keys (issue 13, design §12): a missing or weak key refuses start-up outside demo mode; encryption keys
are a list, newest first; `rotate-keys` moves every stored secret to the newest key; a secret no key opens is
a clear error, never an unhandled 500."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from lsmigrate.server import LSMigrate, create_app
from lsmigrate.server.api.auth import issue_token
from lsmigrate.server.keys import weakness
from lsmigrate.server.records.secrets import SecretBox
from tests.host_app.app import db as host_db
from tests.migration_helpers import API, TOKEN, batch_body, db_rows, migrate, open_session, put

OLD = "Vt8qL2mX9rP4sW7yB3nD6fH1jK5cZ0aE"
NEW = "Qw4eR7tY1uI9oP3aS6dF2gH8jK5lZ0xC"
OTHER = "Mn6bV9cX2zL5kJ8hG1fD4sA7pO3iU0yT"
SIGNING = "Zx5cV8bN1mA4sD7fG0hJ3kL6qW9eR2tY"


# --- start-up ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("changeme", "it is 8 characters long, and 32 or more are needed"),
        ("test-secret-key", "it is 15 characters long"),
        ("changeme" * 4, "it has 7 distinct characters, and 10 or more are needed"),
        ("k" * 40, "it has 1 distinct characters"),
        ("abcdefghij" * 4, "it repeats itself"),
        ("lsmigrate-secret-key-password-01", "it is mostly well-known words"),
        ("host-lsmigrate-key-0123456789abcdef", "it is mostly well-known words"),
        (OLD, None),
        ("correct horse battery staple, then 7 more words", None),
        ("0c6f1e3b9a8d4f27b5e1c0a9d8f7e6b5", None),  # 128 random bits in hex
    ],
)
def test_a_weak_key_is_told_from_a_strong_one(key: str, why: str | None) -> None:
    found = weakness(key)
    assert found == why if why is None else found is not None and found.startswith(why)


def standalone(tmp_path: Path, **config: Any) -> Flask:
    base = {
        "TESTING": True,
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'x.db'}",
        "STORES": "lsmigrate.demo.stores:STORES",
        "MODELS": ["lsmigrate.demo.models"],
    }
    return create_app({**base, **config})


@pytest.fixture(autouse=True)
def _no_keys_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("SECRET_KEY", "SIGNING_KEYS", "ENCRYPTION_KEYS", "DEMO"):
        monkeypatch.delenv(f"LSMIGRATE_{name}", raising=False)
    monkeypatch.setenv("LSMIGRATE_INSTANCE_PATH", str(tmp_path / "instance"))


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "LSMIGRATE_SECRET_KEY is not set (nor LSMIGRATE_SIGNING_KEYS)"),
        ({"SECRET_KEY": "changeme"}, "LSMIGRATE_SECRET_KEY is too weak to sign tokens and encrypt secrets: it is 8"),
        ({"SECRET_KEY": "k" * 40}, "LSMIGRATE_SECRET_KEY is too weak to sign tokens and encrypt secrets: it has 1"),
        ({"SIGNING_KEYS": OLD}, "LSMIGRATE_SECRET_KEY is not set (nor LSMIGRATE_ENCRYPTION_KEYS)"),
        ({"SECRET_KEY": OLD, "SIGNING_KEYS": f"{NEW},changeme"}, "LSMIGRATE_SIGNING_KEYS entry 2 of 2 is too weak"),
        ({"SECRET_KEY": "changeme", "ENCRYPTION_KEYS": [NEW]}, "LSMIGRATE_SECRET_KEY is too weak"),  # still signs
    ],
)
def test_outside_demo_mode_a_missing_or_weak_key_refuses_start_up(tmp_path, config, message: str) -> None:
    with pytest.raises(RuntimeError, match=re.escape(message)) as refused:
        standalone(tmp_path, **config)
    assert "SECURITY.md" in str(refused.value)
    for key in ("changeme", "k" * 40, NEW, OLD):
        assert key not in str(refused.value)  # a key is never written in a message
    assert not (tmp_path / "instance" / "secret_key").exists()  # nor invented


def test_a_weak_older_encryption_key_only_decrypts_so_it_may_stay_until_rotated(tmp_path, caplog) -> None:
    """The way off `changeme`: it stays second in the encryption list (it decrypts, never encrypts) until
    `rotate-keys` ran; as a signing key it would still verify tokens anyone could mint, so it is refused."""
    with caplog.at_level(logging.WARNING, logger="lsmigrate.server.keys"):
        app = standalone(tmp_path, SECRET_KEY=SIGNING, ENCRYPTION_KEYS=[NEW, "changeme"])
    assert app.config["ENCRYPTION_KEYS"] == (NEW, "changeme")
    assert "LSMIGRATE_ENCRYPTION_KEYS entry 2 of 2 is weak" in caplog.text and "changeme" not in caplog.text
    with pytest.raises(RuntimeError, match="LSMIGRATE_SIGNING_KEYS entry 2 of 2 is too weak"):
        standalone(tmp_path, SECRET_KEY=SIGNING, SIGNING_KEYS=[NEW, "changeme"])


def test_a_key_list_is_parsed_strictly(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LSMIGRATE_ENCRYPTION_KEYS", f" {NEW} , {OLD} ")
    app = standalone(tmp_path, SECRET_KEY=SIGNING)
    assert (app.config["ENCRYPTION_KEYS"], app.config["SIGNING_KEYS"]) == ((NEW, OLD), (SIGNING,))
    monkeypatch.setenv("LSMIGRATE_ENCRYPTION_KEYS", f"{NEW},,{OLD}")
    with pytest.raises(ValueError, match="LSMIGRATE_ENCRYPTION_KEYS: an entry is empty"):
        standalone(tmp_path, SECRET_KEY=SIGNING)


def test_the_demo_runs_with_a_weak_key_or_generates_its_own(tmp_path) -> None:
    assert standalone(tmp_path, DEMO=True, SECRET_KEY="changeme").config["SIGNING_KEYS"] == ("changeme",)
    generated = standalone(tmp_path, DEMO=True).config["SECRET_KEY"]
    assert weakness(generated) is None
    assert (tmp_path / "instance" / "secret_key").read_text().strip() == generated
    assert standalone(tmp_path, DEMO=True).config["SECRET_KEY"] == generated  # kept for the next start


def test_mounted_in_a_host_app_a_weak_key_refuses_start_up_too() -> None:
    app = Flask(__name__)
    app.config["LSMIGRATE_SECRET_KEY"] = "host-lsmigrate-key-0123456789abcdef"
    with pytest.raises(RuntimeError, match="LSMIGRATE_SECRET_KEY is too weak"):
        LSMigrate(app, db=host_db, stores="tests.host_app.stores:STORES")


# --- a world of secrets under one key, then another --------------------------------------------------------


def keyed(make_app: Any, *encryption: str, **config: Any) -> Flask:
    """An app on the shared database whose environments conflicts are `ask`, tokens signed with SIGNING."""
    settings = {"SIGNING_KEYS": [SIGNING], "CONFLICT_POLICIES": {"environments": "ask"}, **config}
    app: Flask = make_app(None, ENCRYPTION_KEYS=list(encryption), **settings)
    return app


def bearer(app: Flask, user_id: str) -> dict[str, str]:
    with app.app_context():
        return {"Authorization": f"Bearer {issue_token(user_id)}"}


SERVER = {"id": "env-1", "name": "Prod", "githubToken": TOKEN, "updatedAt": "2024-05-01T00:00:00.000Z"}
LOCAL = SERVER | {"description": "edited", "githubToken": TOKEN + "-new", "updatedAt": "2024-06-01T00:00:00.000Z"}
SECOND = [
    LOCAL,  # a conflict: migration_conflicts.local and .server
    {"id": "env-2", "name": ["not", "a", "name"], "githubToken": TOKEN},  # quarantine.raw
    {"id": "env-3", "name": "Nul\u0000inside", "githubToken": TOKEN},  # quarantine.raw, kept as $json text
]


def secrets_everywhere(app: Flask) -> dict[str, Any]:
    """Alice's and bob's data with a secret in every place lsmigrate keeps one; what to look at it by."""
    alice, bob = bearer(app, "alice"), bearer(app, "bob")
    client = app.test_client()
    for headers in (alice, bob):
        migrate(client, headers, {"environments": [SERVER]}, "seed")  # a row, a remainder
    sid, answers, _ = migrate(client, alice, {"environments": SECOND}, "second")
    assert [r["outcome"] for r in answers[0]["results"]] == ["conflict", "quarantined", "quarantined"]
    bob_sid, bob_answers, _ = migrate(client, bob, {"environments": [LOCAL]}, "second")
    conflict = bob_answers[0]["results"][0]["conflict_id"]
    kept = client.post(f"{API}/sessions/{bob_sid}/conflicts/{conflict}", json={"keep": "local"}, headers=bob)
    assert kept.json["outcome"] == "updated"  # bob's pre-image in the ledger, his row under the key in force
    return {"sid": sid, "conflict": answers[0]["results"][0]["conflict_id"], "bob_sid": bob_sid}


def views(app: Flask, world: dict[str, Any]) -> dict[str, Any]:
    """What alice and bob are shown of their secrets (masked) and of their keys (rebuilt, secrets in clear)."""
    client, alice, bob = app.test_client(), bearer(app, "alice"), bearer(app, "bob")
    answers = {
        "quarantine": client.get(f"{API}/sessions/{world['sid']}/quarantine", headers=alice),
        "conflicts": client.get(f"{API}/sessions/{world['sid']}/conflicts", headers=alice),
        "bob's conflicts": client.get(f"{API}/sessions/{world['bob_sid']}/conflicts", headers=bob),
        "alice's key": client.get(f"{API}/keys/environments", headers=alice),
        "bob's key": client.get(f"{API}/keys/environments", headers=bob),
    }
    for name, answer in answers.items():
        assert answer.status_code == 200, (name, answer.json)
    return {name: answer.json for name, answer in answers.items()}


def ciphertexts(postgres: Any) -> list[str]:
    """Every ciphertext in the database."""
    text = " ".join(
        str(row)
        for query in (
            "SELECT github_token_encrypted FROM environments",
            "SELECT raw FROM quarantine",
            "SELECT local, server FROM migration_conflicts",
            "SELECT pre_image FROM migration_ledger WHERE pre_image IS NOT NULL",
            "SELECT document FROM migration_remainders",
        )
        for row in db_rows(postgres, query)
    )
    return re.findall(r"gAAAAA[A-Za-z0-9_=-]+", text)


def rotate(app: Flask) -> tuple[int, dict[str, list[int]]]:
    """Run `rotate-keys`: (its exit code, its table by place: [re-encrypted, already newest, unreadable])."""
    result = app.test_cli_runner().invoke(args=["lsmigrate", "rotate-keys", "--batch-size", "2"])
    rows = [line.split() for line in result.output.splitlines()[1:] if line and not line.startswith("Error")]
    return result.exit_code, {row[0]: [int(n) for n in row[1:4]] for row in rows if len(row) == 4}


PLACES = (
    "environments.github_token_encrypted",
    "quarantine.raw",
    "migration_conflicts.local",
    "migration_conflicts.server",
    "migration_ledger.pre_image",
    "migration_remainders.document",
)


def test_a_new_key_first_keeps_every_secret_readable_and_rotate_keys_lets_the_old_one_go(make_app, postgres) -> None:
    old = keyed(make_app, OLD)
    world = secrets_everywhere(old)
    shown = views(old, world)
    assert TOKEN in shown["alice's key"]["value"]  # the key rebuilt: its secrets are the user's to have back
    stored = ciphertexts(postgres)
    assert len(stored) >= 8 and all(SecretBox([OLD]).decrypt(c) for c in stored)

    rotated = keyed(make_app, NEW, OLD)
    assert views(rotated, world) == shown  # the old key still decrypts
    code, table = rotate(rotated)
    assert code == 0, table
    for place in PLACES:
        assert table[place][0] >= 1 and table[place][2] == 0, (place, table)
    assert table["total"][0] == len(stored) and table["total"][2] == 0
    code, again = rotate(rotated)
    assert code == 0 and again["total"] == [0, len(stored), 0]  # idempotent: nothing left to move

    new = keyed(make_app, NEW)  # the old key dropped
    assert all(SecretBox([NEW]).decrypt(c) for c in ciphertexts(postgres))
    assert views(new, world) == shown
    client, alice = new.test_client(), bearer(new, "alice")
    kept = client.post(
        f"{API}/sessions/{world['sid']}/conflicts/{world['conflict']}", json={"keep": "local"}, headers=alice
    )
    assert (kept.status_code, kept.json["outcome"]) == (200, "updated")
    undone = client.post(f"{API}/sessions/{world['bob_sid']}/rollback", headers=bearer(new, "bob"))
    assert undone.status_code == 200, undone.json
    # Rotation rewrote the row's ciphertext, not what it holds: the row is still what the session wrote.
    assert (undone.json["restored"], undone.json["skipped"]) == ({"environments": 1}, [])
    [(token,)] = db_rows(postgres, "SELECT github_token_encrypted FROM environments WHERE user_id = 'bob'")
    assert SecretBox([NEW]).decrypt(token) == TOKEN  # bob's pre-image, restored, under the new key


def test_a_secret_no_key_decrypts_is_a_clear_error_naming_its_row_in_the_log(make_app, postgres, caplog) -> None:
    old = keyed(make_app, OLD)
    world = secrets_everywhere(old)
    sid = world["sid"]
    # A session under way when the key was lost: its first batch encrypted with the old key.
    alice_old = bearer(old, "alice")
    third = open_session(old.test_client(), alice_old, "third")
    first = {"id": "env-7", "name": "Staging", "githubToken": TOKEN, "updatedAt": "2024-01-01T00:00:00.000Z"}
    assert put(old.test_client(), alice_old, third, 0, batch_body("environments", [first])).status_code == 200

    lost = keyed(make_app, OTHER)
    client, alice = lost.test_client(), bearer(lost, "alice")
    [quarantined_id, _] = [row[0] for row in db_rows(postgres, "SELECT id FROM quarantine ORDER BY index")]
    [(row_id,)] = db_rows(postgres, "SELECT id FROM environments WHERE name = 'Staging'")
    newer = first | {"updatedAt": "2024-02-01T00:00:00.000Z"}  # supersedes env-7: its row is read back
    conflict, keep = world["conflict"], {"keep": "local"}
    conflict_row = f"migration_conflicts {conflict}/local"
    calls = [
        (f"quarantine {quarantined_id}", lambda: client.get(f"{API}/sessions/{sid}/quarantine", headers=alice)),
        (conflict_row, lambda: client.get(f"{API}/sessions/{sid}/conflicts", headers=alice)),
        (conflict_row, lambda: client.post(f"{API}/sessions/{sid}/conflicts/{conflict}", json=keep, headers=alice)),
        ("migration_remainders", lambda: client.get(f"{API}/keys/environments", headers=alice)),
        (f"environments {row_id}", lambda: put(client, alice, third, 1, batch_body("environments", [newer], 1))),
    ]
    for row, request in calls:
        caplog.clear()
        with caplog.at_level(logging.ERROR, logger="lsmigrate.server.records.secrets"):
            answer = request()
        assert (answer.status_code, answer.json["error"]["code"]) == (500, "secret_unreadable"), (row, answer.json)
        assert "cannot be decrypted" in answer.json["error"]["message"]
        assert f"A stored secret in {row}" in caplog.text, (row, caplog.text)
        assert "gAAAAA" not in caplog.text + answer.get_data(as_text=True)
    # A rollback restores ciphertexts as they are: it needs no key.
    assert client.post(f"{API}/sessions/{world['bob_sid']}/rollback", headers=bearer(lost, "bob")).status_code == 200

    before = ciphertexts(postgres)
    code, table = rotate(lost)
    assert code == 1 and table["total"][0] == 0 and table["total"][2] == len(before)
    assert ciphertexts(postgres) == before  # left as they were, for the right key to read again
