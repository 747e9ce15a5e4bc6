"""Bearer tokens: signed user ids. The user always comes from here, never from a body.

A token's claims: `sub` (the user id), `iss` ("lsmigrate"), `aud` (who may accept it: "lsmigrate", or
"lsmigrate-demo" for the demo's `/demo?user=…` tokens, which only a server in demo mode accepts), `jti` (its
id), `iat` and `exp` (when it was issued and when it expires, in seconds since the epoch). It is signed with
HMAC-SHA256 under the newest signing key and verified under any of SIGNING_KEYS (`lsmigrate.server.keys`);
its signed age is checked against TOKEN_MAX_AGE too, so lowering that setting shortens tokens issued before.
A token revoked by its id, or issued before its user's "not before", is refused (401 `token_revoked`,
`api.revocation`).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from typing import Any

from flask import g, request
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from lsmigrate.server.api import revocation
from lsmigrate.server.errors import Unauthorized
from lsmigrate.server.extension import current_lsmigrate, settings
from lsmigrate.server.keys import signing_key
from lsmigrate.shared.protocol import MAX_USER_ID

_SALT = "lsmigrate bearer token"
ISSUER = "lsmigrate"
AUDIENCE = "lsmigrate"
#: The audience of the demo's tokens: accepted only by a server in demo mode.
DEMO_AUDIENCE = "lsmigrate-demo"
MAX_JTI = 64
#: Where a request keeps its user once its token was checked (the rate limiter and the view both ask).
_CHECKED = "lsmigrate.user_id"


def token_serializer() -> URLSafeTimedSerializer:
    """The tokens' serializer: it signs with the newest signing key and verifies with any of them."""
    keys = [signing_key(entry) for entry in reversed(settings()["SIGNING_KEYS"])]  # itsdangerous: newest last
    return URLSafeTimedSerializer(keys, salt=_SALT, signer_kwargs={"digest_method": hashlib.sha256})


def issue_token(user_id: str, audience: str = AUDIENCE, lifetime: int | None = None) -> str:
    """A bearer token for `user_id`, valid `lifetime` seconds (at most, and by default, TOKEN_MAX_AGE);
    ValueError for an id no column holds or a lifetime out of bounds."""
    if not 0 < len(user_id) <= MAX_USER_ID:
        raise ValueError(f"a user id is 1 to {MAX_USER_ID} characters long, not {len(user_id)}")
    longest = settings()["TOKEN_MAX_AGE"]
    lifetime = longest if lifetime is None else lifetime
    if not 0 < lifetime <= longest:
        raise ValueError(f"a token lives 1 to {longest} seconds (TOKEN_MAX_AGE), not {lifetime}")
    now = time.time()
    claims = {
        "sub": user_id,
        "iss": ISSUER,
        "aud": audience,
        "jti": secrets.token_urlsafe(16),
        "iat": now,
        "exp": int(now) + lifetime,
    }
    return token_serializer().dumps(claims)


def _audiences() -> frozenset[str]:
    return frozenset({AUDIENCE, DEMO_AUDIENCE}) if settings()["DEMO"] else frozenset({AUDIENCE})


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def token_claims(token: str, audiences: Collection[str] | None = None, *, expired: bool = False) -> dict[str, Any]:
    """The claims of a token this server signed, for one of `audiences` (default: those this server accepts);
    Unauthorized (invalid_token) when it is not one, or has expired (unless `expired` says to take it anyway)."""
    invalid = Unauthorized("The bearer token is not valid.", code="invalid_token")
    try:
        claims = token_serializer().loads(token, max_age=None if expired else settings()["TOKEN_MAX_AGE"])
    except SignatureExpired as error:
        raise Unauthorized("The bearer token has expired.", code="invalid_token") from error
    except BadSignature as error:
        raise invalid from error
    if not isinstance(claims, dict) or claims.get("iss") != ISSUER:
        raise invalid
    subject, jti = claims.get("sub"), claims.get("jti")
    if not isinstance(subject, str) or not 0 < len(subject) <= MAX_USER_ID:
        raise invalid
    if not isinstance(jti, str) or not 0 < len(jti) <= MAX_JTI or not _number(claims.get("iat")):
        raise invalid
    if not _number(claims.get("exp")):
        raise invalid
    if claims.get("aud") not in (_audiences() if audiences is None else audiences):
        raise Unauthorized("The bearer token was issued for another server.", code="invalid_token")
    if not expired and claims["exp"] <= time.time():
        raise Unauthorized("The bearer token has expired.", code="invalid_token")
    return claims


def expiry(claims: dict[str, Any]) -> datetime:
    """When a token expires, from its claims."""
    return datetime.fromtimestamp(claims["exp"], UTC)


def user_from_token(token: str) -> str:
    """The user id a token was issued for; Unauthorized when it is not valid, has expired or was revoked."""
    claims = token_claims(token)
    if revocation.is_revoked(claims["sub"], claims["jti"], claims["iat"]):
        raise Unauthorized("The bearer token was revoked: sign in again for a new one.", code="token_revoked")
    user_id: str = claims["sub"]
    return user_id


def bearer_token() -> str | None:
    """The token of the request's `Authorization: Bearer <token>` header, or None."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _hosted_user(loader: Callable[[], str | None]) -> str:
    user_id = loader()
    if user_id is None or user_id == "":
        raise Unauthorized("Sign in first: this app does not know who you are.", code="not_signed_in")
    if not isinstance(user_id, str) or len(user_id) > 255:
        # The host's loader is wrong, not the request: a server error the operator sees, never a user's id guessed.
        raise TypeError(
            f"the user_id callable must return a str of at most 255 characters or None, got {type(user_id).__name__}"
        )
    return user_id


def authenticate() -> None:
    """before_request hook: sets g.user_id, from the host app's `user_id` callable, else the bearer token."""
    loader = current_lsmigrate().user_loader
    if loader is not None:
        g.user_id = _hosted_user(loader)
        return
    checked = request.environ.get(_CHECKED)
    if checked is not None:
        g.user_id = checked
        return
    token = bearer_token()
    if token is None:
        raise Unauthorized("An 'Authorization: Bearer <token>' header is required.")
    g.user_id = request.environ[_CHECKED] = user_from_token(token)
