"""Secrets at rest: Fernet (AES-128-CBC + HMAC-SHA256) with key rotation.

`ENCRYPTION_KEYS` lists Fernet keys, newest first: values are encrypted with the first and
decrypted with any of them, so a new key can be put in front and `manage.py rotate_secrets`
re-encrypts every stored secret with it before the old key is dropped.

Without `ENCRYPTION_KEYS` a key is derived from `SECRET_KEY` (HKDF), so a development
database still works; a system check warns about it.
"""

from __future__ import annotations

import base64
import functools

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

__all__ = ["DecryptionError", "SealedField", "decrypt", "encrypt", "mask", "reset_keys", "rotate"]


class DecryptionError(Exception):
    """A stored secret could not be decrypted with any configured key."""


def _derived_key(secret_key: str) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"ai-gateway-secrets", info=b"fernet")
    return base64.urlsafe_b64encode(hkdf.derive(secret_key.encode()))


@functools.cache
def _fernet() -> MultiFernet:
    keys = list(settings.ENCRYPTION_KEYS) or [_derived_key(settings.SECRET_KEY).decode()]
    return MultiFernet([Fernet(key.encode() if isinstance(key, str) else key) for key in keys])


def reset_keys() -> None:
    """Forget the cached keys (tests and `rotate_secrets` change the settings at run time)."""
    _fernet.cache_clear()


def encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise DecryptionError("secret cannot be decrypted with the configured ENCRYPTION_KEYS") from exc


def rotate(token: str) -> str:
    """Re-encrypt `token` with the newest key."""
    try:
        return _fernet().rotate(token.encode()).decode()
    except InvalidToken as exc:
        raise DecryptionError("secret cannot be decrypted with the configured ENCRYPTION_KEYS") from exc


def mask(plaintext: str) -> str:
    """What operators see after saving: a recognisable head and the last four characters.

    Short values show nothing of themselves: too little is left to hide.
    """
    if len(plaintext) < 12:
        return "••••"
    return f"{plaintext[:3]}…{plaintext[-4:]}"


MASK_CHAR = "…"


def looks_masked(value: str) -> bool:
    """True for a value that came out of `mask` (an export imported back)."""
    return value == "••••" or (MASK_CHAR in value and len(value) <= 12)


class SealedField:
    """A model's secret, kept in three of its fields: an environment variable's name, or the
    encrypted value; plus the hint shown in its place (masked, or `env:NAME`). Provider
    credentials and alert channel targets are both kept this way."""

    def __init__(self, env: str, ciphertext: str, hint: str) -> None:
        self.env, self.ciphertext, self.hint = env, ciphertext, hint

    def seal(self, obj: object, plaintext: str, *, hint: str | None = None) -> None:
        setattr(obj, self.env, "")
        setattr(obj, self.ciphertext, encrypt(plaintext))
        setattr(obj, self.hint, mask(plaintext) if hint is None else hint)

    def refer(self, obj: object, name: str) -> None:
        setattr(obj, self.env, name)
        setattr(obj, self.ciphertext, "")
        setattr(obj, self.hint, f"env:{name}")

    def reveal(self, obj: object) -> str | None:
        import os

        if name := getattr(obj, self.env):
            return os.environ.get(name)
        if token := getattr(obj, self.ciphertext):
            return decrypt(token)
        return None

    def display(self, obj: object) -> str:
        name = getattr(obj, self.env)
        return f"env:{name}" if name else getattr(obj, self.hint)
