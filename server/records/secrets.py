"""Encryption of secrets at rest: Fernet under a list of keys, newest first (`lsmigrate.server.keys`).

A secret is encrypted with the newest key and decrypted with any key of the list (MultiFernet): a new key
put first leaves what the older ones encrypted readable, and `rotate` moves a ciphertext to the newest key
(`lsmigrate rotate-keys`, `records.rotation`). A ciphertext no key opens is `SecretUnreadable`, a 500
`secret_unreadable` in the API's envelope, with the row it came from named in the log (by the box its
reader bound to that row with `reading`); the ciphertext itself is never logged.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from lsmigrate.server.errors import ApiError
from lsmigrate.server.keys import encryption_key

log = logging.getLogger(__name__)


class SecretUnreadable(ApiError):
    """A stored secret that none of the encryption keys decrypts: a key dropped too early, or a damaged value."""

    status, code = 500, "secret_unreadable"


class SecretBox:
    """Encrypts secret values with the newest key, and decrypts them with any of the keys (newest first)."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys or isinstance(keys, str):
            raise ValueError("a SecretBox takes a list of keys, newest first")
        self._newest = Fernet(encryption_key(keys[0]))
        self._fernet = MultiFernet([self._newest, *(Fernet(encryption_key(key)) for key in keys[1:])])
        self._keys = len(keys)
        self._where: str | None = None

    def reading(self, table: str, *row: object) -> SecretBox:
        """This box, naming row `row` (its primary key's values) of `table` when a secret of it is unreadable."""
        bound = copy.copy(self)
        bound._where = f"{table} {'/'.join(str(part) for part in row)}".rstrip()
        return bound

    def encrypt(self, value: str) -> str:
        """The ciphertext of a secret, as text, under the newest key."""
        return self._fernet.encrypt(value.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        """The clear value of a ciphertext made by `encrypt` under any of the keys; SecretUnreadable otherwise."""
        try:
            return self._fernet.decrypt(self._bytes(token)).decode("utf-8")
        except (InvalidToken, UnicodeError) as error:
            raise self._unreadable() from error

    def rotate(self, token: str) -> str | None:
        """The ciphertext re-encrypted under the newest key; None when it is under that key already."""
        data = self._bytes(token)
        try:
            self._newest.decrypt(data)
            return None
        except InvalidToken:
            pass
        try:
            return self._fernet.rotate(data).decode("ascii")
        except InvalidToken as error:
            raise self._unreadable() from error

    def _bytes(self, token: object) -> bytes:
        if not isinstance(token, str) or not token.isascii():
            raise self._unreadable()
        return token.encode("ascii")

    def _unreadable(self) -> SecretUnreadable:
        log.error(
            "A stored secret in %s cannot be decrypted with any of the %d encryption key(s): put the key it was "
            "encrypted with back in LSMIGRATE_ENCRYPTION_KEYS (see SECURITY.md)",
            self._where or "a row its reader did not name",
            self._keys,
        )
        return SecretUnreadable(
            "A secret stored with this record cannot be decrypted with the server's keys; the operator can see "
            "which row in the server's log.",
        )


def secret_box() -> SecretBox:
    """The current app's SecretBox."""
    from lsmigrate.server.extension import current_lsmigrate

    return current_lsmigrate().box
