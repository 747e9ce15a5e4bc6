"""The operator's credential: a bearer token of its own audience, never a user's.

    flask --app lsmigrate.server lsmigrate operator-token NAME [--expires-in SECONDS]

An operator token is signed like a user's (`api.auth`: the newest of SIGNING_KEYS, verified under any of
them, so rotating the signing keys rotates it too) with the audience "lsmigrate-operator" and the operator's
name as its subject. A user's token (audience "lsmigrate" or "lsmigrate-demo") is refused by every operator
route with 401 `operator_token_required`, and an operator token is refused by the migration API (its audience
is not one the API accepts). It is revoked like a user's: `lsmigrate revoke --token` or `--user NAME`.
"""

from __future__ import annotations

from flask import g

from lsmigrate.server.api import revocation
from lsmigrate.server.api.auth import bearer_token, issue_token, token_claims
from lsmigrate.server.errors import Unauthorized

OPERATOR_AUDIENCE = "lsmigrate-operator"


def issue_operator_token(name: str, lifetime: int | None = None) -> str:
    """A bearer token for operator `name` (who did what, in the logs and the audit trail)."""
    return issue_token(name, audience=OPERATOR_AUDIENCE, lifetime=lifetime)


def require_operator() -> str:
    """The operator named by the request's bearer token (also set as `g.operator`); Unauthorized
    (`operator_token_required`) for no token, a user's token, or one that is invalid, expired or revoked."""
    token = bearer_token()
    refused = Unauthorized(
        "An operator token is required ('Authorization: Bearer <token>' from `lsmigrate operator-token NAME`); "
        "a user's token is never one.",
        code="operator_token_required",
    )
    if token is None:
        raise refused
    try:
        claims = token_claims(token, audiences=(OPERATOR_AUDIENCE,))
    except Unauthorized as error:
        raise refused from error
    if revocation.is_revoked(claims["sub"], claims["jti"], claims["iat"]):
        raise refused
    g.operator = claims["sub"]
    return str(claims["sub"])
