"""Secrets at rest: Fernet (AES-128-CBC + HMAC-SHA256) with key rotation.

`ENCRYPTION_KEYS` lists Fernet keys, newest first: values are encrypted with the first and
decrypted with any of them, so a new key can be put in front and `manage.py rotate_secrets`
re-encrypts every stored secret with it before the old key is dropped.

Without `ENCRYPTION_KEYS` a key is derived from `SECRET_KEY` (HKDF), so a development
database still works; a system check warns about it.

A secret may also be a reference to an environment variable (`env:NAME`), for provider
keys kept out of the database. Such a reference must never read the server's own
configuration (`env:SECRET_KEY` would send the server's key to any URL an admin-scope key
names): `env_reference_error` refuses every name the settings module reads, the names
Django, libpq and our commands read, and any variable whose value is one of the server's
own keys; `SealedField.reveal` reads nothing for a refused name.
"""

from __future__ import annotations

import ast
import base64
import functools
import importlib.util
import logging
import os
import re
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

__all__ = [
    "DecryptionError",
    "SealedField",
    "decrypt",
    "encrypt",
    "env_reference_error",
    "mask",
    "reset_keys",
    "rotate",
    "server_env_names",
]

log = logging.getLogger(__name__)


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
        """The clear value; None when there is none, or when the reference is refused (the
        refusal is logged: the import and the admin refuse such names before saving)."""
        if name := getattr(obj, self.env):
            if (why := env_reference_error(name)) is not None:
                log.error("%s %s: %s", type(obj).__name__, getattr(obj, "pk", None), why)
                return None
            return os.environ.get(name)
        if token := getattr(obj, self.ciphertext):
            return decrypt(token)
        return None

    def display(self, obj: object) -> str:
        name = getattr(obj, self.env)
        return f"env:{name}" if name else getattr(obj, self.hint)


# -- env: references -----------------------------------------------------------------------

# Read by the server outside its settings module: Django (DJANGO_SETTINGS_MODULE and
# friends), libpq (PGPASSWORD, PGPASSFILE, ...), `manage.py ensure_admin` (ADMIN_*).
_SERVER_PREFIXES = ("DJANGO_", "ADMIN_")
_LIBPQ = re.compile(r"PG[A-Z]+")
# Always refused, even if the settings module cannot be read.
_ALWAYS = frozenset(
    {
        "SECRET_KEY",
        "SECRET_KEY_FALLBACKS",
        "ENCRYPTION_KEYS",
        "DATABASE_URL",
        "REDIS_URL",
        "EMAIL_URL",
        "ADMIN_PASSWORD",
    }
)
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Calls through which a settings module reads a variable: django-environ (`env.str("X")`,
# `env("X")`), os.environ.get/setdefault/pop, os.getenv.
_READERS = re.compile(r"env(\.\w+)?|os\.getenv|getenv|os\.environ\.(get|setdefault|pop)|environ\.(get|setdefault|pop)")


@functools.cache
def server_env_names() -> frozenset[str]:
    """Every environment variable the settings module reads, found in its source: the list
    follows the settings by itself (a setting added later is refused without a change here)."""
    names = set(_ALWAYS)
    modules = {
        "project.settings",
        os.environ.get("DJANGO_SETTINGS_MODULE") or "",
        getattr(settings, "SETTINGS_MODULE", None) or "",
    }
    for module in filter(None, modules):
        try:
            spec = importlib.util.find_spec(module)
            source = Path(spec.origin).read_text(encoding="utf-8") if spec and spec.origin else ""
            tree = ast.parse(source)
        except (ImportError, OSError, SyntaxError, ValueError) as exc:
            log.warning("cannot read %s for the names env: references may not use: %s", module, exc)
            continue
        for node in ast.walk(tree):
            key: ast.expr | None = None
            if isinstance(node, ast.Call) and node.args and _READERS.fullmatch(ast.unparse(node.func)):
                key = node.args[0]
            elif isinstance(node, ast.Subscript) and ast.unparse(node.value) in ("os.environ", "environ"):
                key = node.slice
            if isinstance(key, ast.Constant) and isinstance(key.value, str) and _ENV_NAME.fullmatch(key.value):
                names.add(key.value.upper())
    return frozenset(names)


def _server_values() -> set[str]:
    database = settings.DATABASES.get("default", {})
    values = {
        settings.SECRET_KEY,
        *getattr(settings, "SECRET_KEY_FALLBACKS", ()),
        *(k.decode() if isinstance(k, bytes) else str(k) for k in settings.ENCRYPTION_KEYS),
        database.get("PASSWORD") or "",
        getattr(settings, "EMAIL_HOST_PASSWORD", "") or "",
        getattr(settings, "REDIS_URL", "") or "",
    }
    return {v for v in values if v}


def env_reference_error(name: str) -> str | None:
    """Why `env:NAME` may not be used, or None if it may. Provider keys and alert targets
    may come from the environment; the server's own configuration may not."""
    if not _ENV_NAME.fullmatch(name or ""):
        return f"env:{name} is not an environment variable name"
    upper = name.upper()
    if upper in server_env_names() or upper.startswith(_SERVER_PREFIXES) or _LIBPQ.fullmatch(upper):
        return (
            f"env:{name} names a setting of the gateway server itself; an env: reference may "
            f"only name a variable set for provider keys or alert targets"
        )
    value = os.environ.get(name)
    if value and value in _server_values():
        return f"env:{name} holds one of the gateway server's own keys; it cannot be used as a secret"
    return None
