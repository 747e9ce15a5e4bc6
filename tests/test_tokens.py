"""Bearer tokens (issue 13, design §12): claims, signing key lists, and revocation by token and by user,
checked through Redis without a database round trip, and through PostgreSQL when Redis cannot answer."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from flask import Flask
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import event

from lsmigrate.server.api.auth import issue_token, token_serializer
from lsmigrate.server.cache import user_key
from lsmigrate.server.db import db
from tests.fixtures_services import RedisServer
from tests.migration_helpers import API, db_rows

OLD = "Vt8qL2mX9rP4sW7yB3nD6fH1jK5cZ0aE"
NEW = "Qw4eR7tY1uI9oP3aS6dF2gH8jK5lZ0xC"


def token(app: Flask, user_id: str, **options: Any) -> str:
    with app.app_context():
        return issue_token(user_id, **options)


def signed(app: Flask, claims: dict[str, Any]) -> str:
    """Claims signed with the app's newest signing key, as a token of its own would be."""
    with app.app_context():
        return token_serializer().dumps(claims)


def _claims(app: Flask, bearer: str) -> dict[str, Any]:
    with app.app_context():
        claims: dict[str, Any] = token_serializer().loads(bearer)
    return claims


def call(app: Flask, bearer: str) -> tuple[int, str | None]:
    """(status, error code) of an authenticated GET on the app."""
    answer = app.test_client().get(f"{API}/config", headers={"Authorization": f"Bearer {bearer}"})
    return answer.status_code, (answer.json or {}).get("error", {}).get("code")


def cli(app: Flask, *args: str) -> Any:
    return app.test_cli_runner().invoke(args=["lsmigrate", *args])


@contextmanager
def statements(app: Flask) -> Iterator[list[str]]:
    """The SQL statements the app runs meanwhile."""
    seen: list[str] = []

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", before)


def revocation_reads(seen: list[str]) -> list[str]:
    return [s for s in seen if "FROM revoked_tokens" in s or "FROM token_cutoffs" in s]


# --- claims ------------------------------------------------------------------------------------------------


def test_a_token_names_its_issuer_audience_id_and_expiry(app: Flask) -> None:
    claims = _claims(app, token(app, "alice"))
    assert {"sub", "iss", "aud", "jti", "iat", "exp"} == set(claims)
    assert (claims["sub"], claims["iss"], claims["aud"]) == ("alice", "lsmigrate", "lsmigrate")
    assert claims["exp"] - claims["iat"] == pytest.approx(app.config["TOKEN_MAX_AGE"], abs=1)
    assert abs(claims["iat"] - time.time()) < 5
    assert claims["jti"] != _claims(app, token(app, "alice"))["jti"]


def test_the_token_command_issues_a_shorter_token_on_request_never_a_longer_one(app: Flask) -> None:
    result = cli(app, "token", "alice", "--expires-in", "60")
    assert result.exit_code == 0, result.output
    claims = _claims(app, result.output.strip())
    assert claims["exp"] - claims["iat"] == pytest.approx(60, abs=1)
    longer = cli(app, "token", "alice", "--expires-in", str(app.config["TOKEN_MAX_AGE"] + 1))
    assert longer.exit_code == 2 and "TOKEN_MAX_AGE" in longer.output


def test_a_token_past_its_expiry_is_refused(app: Flask) -> None:
    now = time.time()
    claims = {"sub": "alice", "iss": "lsmigrate", "aud": "lsmigrate", "jti": "j1", "iat": now - 100, "exp": now - 1}
    assert call(app, signed(app, claims)) == (401, "invalid_token")
    assert call(app, signed(app, claims | {"exp": now + 100})) == (200, None)


GOOD = {"sub": "alice", "iss": "lsmigrate", "aud": "lsmigrate", "jti": "j1"}


@pytest.mark.parametrize(
    "change",
    [
        {"exp": None},
        {"iat": None},
        {"jti": None},
        {"jti": "j" * 65},
        {"iat": True},
        {"exp": "tomorrow"},
        {"iss": "someone-else"},
        {"aud": "lsmigrate-admin"},
        {"sub": ""},
        {"sub": "u" * 256},
    ],
)
def test_a_token_signed_with_the_key_but_missing_or_wrong_claims_is_refused(app: Flask, change: dict[str, Any]) -> None:
    now = time.time()
    claims = {**GOOD, "iat": now, "exp": now + 100, **change}
    claims = {name: value for name, value in claims.items() if value is not None}
    assert call(app, signed(app, claims)) == (401, "invalid_token")


def test_a_token_cannot_be_checked_against_a_guess_of_the_raw_secret_key(app: Flask) -> None:
    """What broke `changeme` offline: a token verifiable with the raw key and itsdangerous' defaults."""
    bearer = token(app, "alice")
    for digest in ({}, {"signer_kwargs": {"digest_method": hashlib.sha256}}):
        with pytest.raises(BadSignature):
            URLSafeTimedSerializer(app.config["SECRET_KEY"], salt="lsmigrate bearer token", **digest).loads(bearer)


# --- signing keys, newest first ---------------------------------------------------------------------------


def test_a_new_signing_key_first_keeps_older_tokens_valid_until_the_old_key_is_dropped(make_app) -> None:
    old = make_app(None, SECRET_KEY=OLD)
    listed_old = make_app(None, SIGNING_KEYS=[OLD])
    rotated = make_app(None, SIGNING_KEYS=f"{NEW}, {OLD}")  # as the environment gives it
    new_only = make_app(None, SIGNING_KEYS=[NEW])
    before = token(old, "alice")
    assert _claims(listed_old, before)["sub"] == "alice"  # SECRET_KEY alone is the list [SECRET_KEY]
    assert call(rotated, before) == (200, None)
    after = token(rotated, "alice")
    assert call(new_only, after) == (200, None)  # signed with the newest key
    assert call(old, after) == (401, "invalid_token")
    assert call(new_only, before) == (401, "invalid_token")  # the old key dropped: its tokens are done


# --- revocation ---------------------------------------------------------------------------------------------


def test_a_revoked_token_is_refused_everywhere_and_the_users_other_tokens_are_not(app, make_app, postgres) -> None:
    other_instance = make_app(app.config["REDIS_URL"])
    first, second = token(app, "alice"), token(app, "alice")
    assert call(app, first) == call(other_instance, first) == (200, None)  # both instances cached "not revoked"
    result = cli(app, "revoke", "--token", first)
    assert result.exit_code == 0, result.output
    assert f"revoked token {_claims(app, first)['jti']} of user alice" in result.output
    for instance in (app, other_instance):
        assert call(instance, first) == (401, "token_revoked")
        assert call(instance, second) == (200, None)
    assert cli(app, "revoke", "--token", first).exit_code == 0  # again: the same
    assert db_rows(postgres, "SELECT user_id FROM revoked_tokens") == [("alice",)]


def test_revoking_a_user_refuses_every_token_issued_before_and_accepts_new_ones(app) -> None:
    first, second, bob = token(app, "alice"), token(app, "alice"), token(app, "bob")
    assert call(app, first) == (200, None)
    result = cli(app, "revoke", "--user", "alice")
    assert result.exit_code == 0, result.output
    assert "revoked every token of user alice issued before" in result.output
    assert call(app, first) == call(app, second) == (401, "token_revoked")
    assert call(app, bob) == (200, None)
    assert call(app, token(app, "alice")) == (200, None)  # signed in again


def test_a_check_reads_redis_not_the_database_once_the_users_revocations_are_cached(app, redis_server) -> None:
    bearer = token(app, "alice")
    with statements(app) as seen:
        assert call(app, bearer) == (200, None)
    # One read for the rate limiter's and the view's authentication together: it is remembered for the request.
    assert len(revocation_reads(seen)) == 2, seen
    assert redis.Redis.from_url(redis_server.url).exists(user_key("alice", "revocations"))
    with statements(app) as seen:
        assert call(app, bearer) == (200, None)
        assert call(app, token(app, "alice")) == (200, None)
    assert revocation_reads(seen) == []


def test_with_redis_down_a_revoked_token_is_refused_from_the_database(make_app, own_redis: RedisServer) -> None:
    app = make_app(own_redis.url, CACHE_RETRY_SECONDS=0)
    revoked, kept = token(app, "alice"), token(app, "alice")
    assert call(app, revoked) == (200, None)  # cached: not revoked
    assert cli(app, "revoke", "--token", revoked).exit_code == 0
    own_redis.stop()
    assert call(app, revoked) == (401, "token_revoked")
    assert call(app, kept) == (200, None)
    # Revoking while Redis is down: in the database at once, and the command says Redis was not told.
    result = cli(app, "revoke", "--user", "alice")
    assert result.exit_code == 1
    assert "Redis could not be reached: the revocation is in the database" in result.output
    assert call(app, kept) == (401, "token_revoked")
    own_redis.start()  # the same port, empty
    assert call(app, kept) == (401, "token_revoked")


def test_a_revocation_redis_missed_is_told_again_by_running_the_command_again(make_app, own_redis) -> None:
    app = make_app(own_redis.url, CACHE_RETRY_SECONDS=0)
    bearer = token(app, "alice")
    assert call(app, bearer) == (200, None)  # Redis holds "nothing revoked" for alice
    own_redis.pause()
    try:
        assert cli(app, "revoke", "--user", "alice").exit_code == 1
        assert call(app, bearer) == (401, "token_revoked")  # Redis fails: the database answers
    finally:
        own_redis.resume()
    assert cli(app, "revoke", "--user", "alice").exit_code == 0
    assert call(app, bearer) == (401, "token_revoked")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "Give --token TOKEN or --user USER_ID, one of them."),
        (["--token", "x", "--user", "alice"], "Give --token TOKEN or --user USER_ID, one of them."),
        (["--token", "not-a-token"], "not signed by any of this server's keys"),
        (["--user", "u" * 256], "a user id is 1 to 255 characters long"),
    ],
)
def test_the_revoke_command_says_what_it_needs(app, args: list[str], message: str) -> None:
    result = cli(app, "revoke", *args)
    assert result.exit_code == 2 and message in result.output


def test_revoking_an_expired_token_is_nothing_to_do(app, postgres) -> None:
    now = time.time()
    expired = signed(app, {**GOOD, "iat": now - 100, "exp": now - 1})
    result = cli(app, "revoke", "--token", expired)
    assert result.exit_code == 0 and "nothing to revoke" in result.output
    assert db_rows(postgres, "SELECT count(*) FROM revoked_tokens") == [(0,)]


def test_revocations_that_refuse_nothing_any_more_are_forgotten(app, postgres) -> None:
    """A cutoff older than TOKEN_MAX_AGE refuses nothing a token's signed age does not already refuse."""
    long_ago = datetime.now(UTC) - timedelta(seconds=app.config["TOKEN_MAX_AGE"] + 60)
    db_rows(postgres, "INSERT INTO token_cutoffs VALUES ('old', %s) RETURNING user_id", long_ago)
    db_rows(postgres, "INSERT INTO token_cutoffs VALUES ('recent', now()) RETURNING user_id")
    assert cli(app, "revoke", "--user", "alice").exit_code == 0
    assert db_rows(postgres, "SELECT user_id FROM token_cutoffs ORDER BY user_id") == [("alice",), ("recent",)]
