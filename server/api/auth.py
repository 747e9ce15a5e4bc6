"""Bearer tokens: signed user ids. The user always comes from here, never from a body.

A token's claims: `sub` (the user id), `iss` ("lsmigrate"), `aud` (who may accept it: "lsmigrate", or
"lsmigrate-demo" for the demo's `/demo?user=…` tokens, which only a server in demo mode accepts) and `jti`
(its id); its age is signed with it and checked against TOKEN_MAX_AGE.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from flask import g, request
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from lsmigrate.server.errors import Unauthorized
from lsmigrate.server.extension import current_lsmigrate, settings
from lsmigrate.shared.protocol import MAX_USER_ID

_SALT = "lsmigrate bearer token"
ISSUER = "lsmigrate"
AUDIENCE = "lsmigrate"
#: The audience of the demo's tokens: accepted only by a server in demo mode.
DEMO_AUDIENCE = "lsmigrate-demo"


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings()["SECRET_KEY"], salt=_SALT)


def issue_token(user_id: str, audience: str = AUDIENCE) -> str:
    """A bearer token for `user_id`, signed with the app's secret key (ValueError for an id no column holds)."""
    if not 0 < len(user_id) <= MAX_USER_ID:
        raise ValueError(f"a user id is 1 to {MAX_USER_ID} characters long, not {len(user_id)}")
    return _serializer().dumps({"sub": user_id, "iss": ISSUER, "aud": audience, "jti": secrets.token_urlsafe(12)})


def _audiences() -> frozenset[str]:
    return frozenset({AUDIENCE, DEMO_AUDIENCE}) if settings()["DEMO"] else frozenset({AUDIENCE})


def user_from_token(token: str) -> str:
    """The user id a token was issued for; Unauthorized when it is not valid."""
    try:
        claims = _serializer().loads(token, max_age=settings()["TOKEN_MAX_AGE"])
    except SignatureExpired as error:
        raise Unauthorized("The bearer token has expired.", code="invalid_token") from error
    except BadSignature as error:
        raise Unauthorized("The bearer token is not valid.", code="invalid_token") from error
    subject = claims.get("sub") if isinstance(claims, dict) else None
    if not isinstance(subject, str) or not 0 < len(subject) <= MAX_USER_ID or claims.get("iss") != ISSUER:
        raise Unauthorized("The bearer token is not valid.", code="invalid_token")
    if claims.get("aud") not in _audiences():
        raise Unauthorized("The bearer token was issued for another server.", code="invalid_token")
    return claims["sub"]


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
    token = bearer_token()
    if token is None:
        raise Unauthorized("An 'Authorization: Bearer <token>' header is required.")
    g.user_id = user_from_token(token)
