"""Keeping secrets out of error pages and log lines.

Secrets are never logged on purpose; these filters are the second line: Django's debug
error page hides POST fields, request headers and frame variables whose names look secret
(also inside dicts, lists and dataclasses, where a provider's config keeps its key), and
every log record (message, arguments, traceback with its exception messages, stack) is
scrubbed of strings shaped like provider or gateway keys and of every secret the gateway
holds, in any spelling `providers.adapters.scrub` knows (a key in a URL, escaped, base64).
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Mapping
from typing import Any

from django.views.debug import SafeExceptionReporterFilter

from providers.adapters.scrub import REDACTED, scrub_text

SECRET_NAME = re.compile(r"(?i)(secret|token|key|pass|plaintext|value|target|auth|credential|cipher|cookie|url|dsn)")
# Shapes of credentials: OpenAI/Anthropic style, our own gateway keys, bearer tokens,
# provider auth headers, Fernet tokens.
SECRET_SHAPES = re.compile(
    r"(sk-[A-Za-z0-9_\-]{8,}|gw_[0-9a-f]{8}_[A-Za-z0-9_\-]{16,}|(?i:bearer)\s+[A-Za-z0-9._\-]{8,}"
    r"|DeepL-Auth-Key\s+\S+|gAAAAA[A-Za-z0-9_\-=]{20,})"
)


def redact(text: str) -> str:
    """`text` without the secrets the gateway holds and without key-shaped strings."""
    return SECRET_SHAPES.sub(REDACTED, scrub_text(text))


class SecretSafeExceptionReporterFilter(SafeExceptionReporterFilter):
    hidden_settings = re.compile(
        "API|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|AUTHORIZATION|ENCRYPTION|DATABASE_URL|REDIS_URL",
        flags=re.I,
    )

    def get_post_parameters(self, request: Any) -> Any:
        params = super().get_post_parameters(request)
        if request is None or not params:
            return params
        cleansed = params.copy()
        for name in cleansed:
            if SECRET_NAME.search(name):
                cleansed[name] = self.cleansed_substitute
        return cleansed

    def get_traceback_frame_variables(self, request: Any, tb_frame: Any) -> Any:
        variables = super().get_traceback_frame_variables(request, tb_frame)
        return [(name, self.cleanse_value(name, value)) for name, value in variables]

    def cleanse_value(self, name: str, value: Any, depth: int = 0) -> Any:
        """`value` as the page may show it: secret-named parts hidden, key-shaped strings redacted."""
        if SECRET_NAME.search(name):
            return self.cleansed_substitute
        if depth > 6:
            return value
        if isinstance(value, str):
            return redact(value)
        if isinstance(value, Mapping):
            return {k: self.cleanse_value(str(k), v, depth + 1) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            items = [self.cleanse_value("", v, depth + 1) for v in value]
            return items if isinstance(value, list) or hasattr(value, "_fields") else type(value)(items)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            parts = ", ".join(
                f"{f.name}={self.cleanse_value(f.name, getattr(value, f.name), depth + 1)!r}"
                for f in dataclasses.fields(value)
            )
            return _Shown(f"{type(value).__name__}({parts})")
        return value


class _Shown:
    """A cleansed stand-in that prints as the object it replaces would, minus its secrets."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


class RedactSecretsFilter(logging.Filter):
    """Scrubs every log record: its message with its arguments, the formatted traceback of
    its exception (where exception messages quote URLs, bodies and headers) and its stack.

    The traceback is formatted here, once, into `exc_text`, which formatters print instead
    of formatting `exc_info` again."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            message = None  # a bad format string: logging reports it when it formats
        if message is not None:
            cleaned = redact(message)
            if cleaned != message:
                record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True
