"""Bearer tokens: signed user ids. The user always comes from here, never from a body."""

from __future__ import annotations

from flask import current_app, g, request
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from lsmigrate.server.errors import Unauthorized

_SALT = "lsmigrate bearer token"


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=_SALT)


def issue_token(user_id: str) -> str:
    """A bearer token for `user_id`, signed with the app's secret key."""
    return _serializer().dumps({"sub": user_id})


def user_from_token(token: str) -> str:
    """The user id a token was issued for; Unauthorized when it is not valid."""
    try:
        claims = _serializer().loads(token, max_age=current_app.config["TOKEN_MAX_AGE"])
    except SignatureExpired as error:
        raise Unauthorized("The bearer token has expired.", code="invalid_token") from error
    except BadSignature as error:
        raise Unauthorized("The bearer token is not valid.", code="invalid_token") from error
    if not isinstance(claims, dict) or not isinstance(claims.get("sub"), str):
        raise Unauthorized("The bearer token is not valid.", code="invalid_token")
    return claims["sub"]


def authenticate() -> None:
    """before_request hook: sets g.user_id from the Authorization header."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("An 'Authorization: Bearer <token>' header is required.")
    g.user_id = user_from_token(token.strip())
