"""lsmigrate's keys: token signing keys and encryption keys, each a list (newest first), and their strength.

    LSMIGRATE_SECRET_KEY        one secret: each list is [it] when its own setting is unset
    LSMIGRATE_SIGNING_KEYS      token signing secrets, comma-separated, newest first: a token is signed with
                                the first and verified with any of them
    LSMIGRATE_ENCRYPTION_KEYS   encryption secrets, comma-separated, newest first: a secret is encrypted with
                                the first and decrypted with any of them (`lsmigrate rotate-keys` moves every
                                stored one to the first)

An entry is a secret string, never used as it is: the key of each use is derived from it with a label of
that use, so one string (SECRET_KEY alone, or the same entry in both lists) still gives a signing key and an
encryption key that tell nothing of each other:

    signing key      HMAC-SHA256(entry, "lsmigrate token signing")   (tokens: itsdangerous, HMAC-SHA256)
    encryption key   SHA-256("lsmigrate secrets\\n" + entry)         (Fernet; the derivation secrets have
                                                                      always had, so what is stored stays
                                                                      readable)
    log hash key     HMAC-SHA256(entry, "lsmigrate log user hash")   (of the newest signing entry: what stands
                                                                      for a user in JSON logs,
                                                                      observability.logs)

Outside demo mode a missing or weak entry stops start-up (`weakness` says why a key is weak), but for an
older encryption key, which only decrypts (the way off a weak key: keep it there until `rotate-keys` has
run); the demo generates a key of its own when none is set, and runs with a weak one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import zlib
from collections.abc import MutableMapping, Sequence
from typing import Any

log = logging.getLogger(__name__)

SIGNING_LABEL = b"lsmigrate token signing"
LOG_HASH_LABEL = b"lsmigrate log user hash"
ENCRYPTION_LABEL = b"lsmigrate secrets\n"

MIN_LENGTH = 32
MIN_DISTINCT = 10
#: zlib's measure of what a key holds: the bytes of its compressed form, past zlib's own framing.
MIN_COMPRESSED = 24
_ZLIB_FRAMING = 8
#: Words a guesser tries first: a key must be long enough without them.
WELL_KNOWN = (
    "changeme", "secret", "password", "lsmigrate", "change-me", "change_me", "passw0rd", "example", "default",
    "letmein", "admin", "qwerty", "test", "demo", "key", "token", "0123456789", "123456", "abcdef",
)  # fmt: skip
_WELL_KNOWN = re.compile("|".join(re.escape(word) for word in WELL_KNOWN), re.IGNORECASE)
GENERATE = "python -c 'import secrets; print(secrets.token_urlsafe(48))'"


def key_list(name: str, value: Any) -> tuple[str, ...]:
    """A key list setting: a sequence of strings, or one string of comma-separated entries (newest first)."""
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",")]
    if isinstance(value, bytes) or not isinstance(value, Sequence) or not all(isinstance(k, str) for k in value):
        raise ValueError(
            f"LSMIGRATE_{name}: expected keys separated by commas (newest first), found a {type(value).__name__}"
        )
    if any(not entry for entry in value):
        raise ValueError(f"LSMIGRATE_{name}: an entry is empty (two commas in a row, or one at an end)")
    return tuple(value)


def weakness(key: str) -> str | None:
    """Why `key` is too weak to sign tokens or encrypt secrets, or None when it is strong enough."""
    if len(key) < MIN_LENGTH:
        return f"it is {len(key)} characters long, and {MIN_LENGTH} or more are needed"
    distinct = len(set(key))
    if distinct < MIN_DISTINCT:
        return f"it has {distinct} distinct characters, and {MIN_DISTINCT} or more are needed"
    if len(zlib.compress(key.encode("utf-8"), 9)) - _ZLIB_FRAMING < MIN_COMPRESSED:
        return "it repeats itself (it compresses to a few bytes)"
    if len(_WELL_KNOWN.sub("", key)) < MIN_LENGTH:
        return f"it is mostly well-known words ({', '.join(WELL_KNOWN[:4])}, …), which are tried first"
    return None


def resolve_keys(settings: MutableMapping[str, Any], *, demo: bool) -> None:
    """Fill SIGNING_KEYS and ENCRYPTION_KEYS with the key lists in force (SECRET_KEY where a list is unset);
    outside demo mode a missing or weak key is a RuntimeError saying which one and why."""
    secret = settings.get("SECRET_KEY") or None
    if secret is not None and not isinstance(secret, str):
        raise ValueError(f"LSMIGRATE_SECRET_KEY: expected a string, found a {type(secret).__name__}")
    for name in ("SIGNING_KEYS", "ENCRYPTION_KEYS"):
        given = key_list(name, settings.get(name))
        keys = given or ((secret,) if secret else ())
        if not keys:
            raise RuntimeError(
                f"LSMIGRATE_SECRET_KEY is not set (nor LSMIGRATE_{name}): lsmigrate signs tokens and encrypts "
                "stored secrets with keys derived from it. Set LSMIGRATE_SECRET_KEY to a long random string, the "
                f"same on every instance (e.g. the output of {GENERATE}); see SECURITY.md."
            )
        if not demo:
            _refuse_weak(name, keys, listed=bool(given))
        settings[name] = keys


def _refuse_weak(name: str, keys: tuple[str, ...], *, listed: bool) -> None:
    for position, entry in enumerate(keys, start=1):
        why = weakness(entry)
        if why is None:
            continue
        where = f"LSMIGRATE_{name} entry {position} of {len(keys)}" if listed else "LSMIGRATE_SECRET_KEY"
        if name == "ENCRYPTION_KEYS" and position > 1:
            # An older encryption key only decrypts: the way off a weak key is to keep it there until `rotate-keys`
            # has moved every secret to the newest key. (An older signing key still verifies tokens, which anyone
            # who guesses it could mint: a weak one is never accepted.)
            log.warning("%s is weak (%s): run `lsmigrate rotate-keys`, then drop it from the list", where, why)
            continue
        raise RuntimeError(
            f"{where} is too weak to sign tokens and encrypt secrets: {why}. Use a long random string "
            f"(e.g. the output of {GENERATE}); only a demo (LSMIGRATE_DEMO=true) runs with a weak key. "
            "See SECURITY.md."
        )


def signing_key(entry: str) -> bytes:
    """The token signing key derived from a key list entry."""
    return hmac.new(entry.encode("utf-8"), SIGNING_LABEL, hashlib.sha256).digest()


def encryption_key(entry: str) -> bytes:
    """The Fernet key (url-safe base64 of 32 bytes) derived from a key list entry."""
    return base64.urlsafe_b64encode(hashlib.sha256(ENCRYPTION_LABEL + entry.encode("utf-8")).digest())


def log_hash_key(entry: str) -> bytes:
    """The key of the users' hashes in the logs, derived from a key list entry."""
    return hmac.new(entry.encode("utf-8"), LOG_HASH_LABEL, hashlib.sha256).digest()
