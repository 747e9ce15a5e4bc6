"""Encryption of secrets at rest (Fernet, key derived from the app's secret key)."""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet


class SecretBox:
    """Encrypts and decrypts secret values with a key derived from the secret key."""

    def __init__(self, secret_key: str) -> None:
        material = hashlib.sha256(b"lsmigrate secrets\n" + secret_key.encode("utf-8")).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(material))

    def encrypt(self, value: str) -> str:
        """The ciphertext of a secret, as text."""
        return self._fernet.encrypt(value.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        """The clear value of a ciphertext made by `encrypt`."""
        return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")


def secret_box() -> SecretBox:
    """The current app's SecretBox."""
    from lsmigrate.server.extension import current_lsmigrate

    return current_lsmigrate().box
