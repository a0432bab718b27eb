"""The log filter (project/redaction.py) scrubs the whole record: the message, the formatted
traceback with its exception messages, and the stack; of key-shaped strings and of every
secret the gateway holds, whatever its shape."""

from __future__ import annotations

import io
import logging
import secrets
from collections.abc import Iterator

import pytest

from project.redaction import REDACTED, RedactSecretsFilter, SecretSafeExceptionReporterFilter
from providers.adapters import scrub

TAG = secrets.token_hex(4)
HELD = f"{TAG}-no-known-shape-0001"  # a provider key no pattern could recognise
SHAPED = f"sk-proj-{TAG}ShapedLikeAKey0001"  # not held: found by its shape


@pytest.fixture
def held() -> Iterator[None]:
    scrub.use_secrets("tests-redaction", [HELD])
    yield
    scrub.forget_secrets("tests-redaction")


@pytest.fixture
def log() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(RedactSecretsFilter())
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    logger = logging.getLogger(f"tests.redaction.{TAG}")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, out
    logger.removeHandler(handler)


def test_a_held_secret_of_no_known_shape_is_scrubbed_from_a_message(held, log):
    logger, out = log
    logger.info("provider answered %s", {"echo": f"Bearer {HELD}"})
    assert HELD not in out.getvalue() and REDACTED in out.getvalue()


def test_a_traceback_carries_no_secret_in_its_exception_messages(held, log):
    logger, out = log
    try:
        try:
            raise ConnectionError(f"upstream said: Authorization: Bearer {HELD}")
        except ConnectionError as inner:
            raise RuntimeError(f"call failed with {SHAPED}") from inner
    except RuntimeError:
        logger.exception("the call failed")
    text = out.getvalue()
    assert "Traceback (most recent call last)" in text and "RuntimeError" in text and "ConnectionError" in text
    assert HELD not in text and SHAPED not in text
    assert text.count(REDACTED) >= 2


def test_an_exception_given_as_exc_info_is_scrubbed_too(held, log):
    logger, out = log
    error = ValueError(f"bad key {HELD}")
    logger.warning("probe failed", exc_info=(ValueError, error, None))
    assert HELD not in out.getvalue() and f"ValueError: bad key {REDACTED}" in out.getvalue()


def test_a_stack_is_scrubbed(held, log):
    logger, out = log

    def deep(api_key: str) -> None:
        logger.info("where am I", stack_info=True)

    deep(HELD)  # the frame's source line shows only the name, but a caller's may show more
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None, sinfo=f"Stack: key={HELD}")
    RedactSecretsFilter().filter(record)
    assert record.stack_info == f"Stack: key={REDACTED}"
    assert "Stack (most recent call last)" in out.getvalue()


def test_the_debug_error_page_hides_held_secrets_in_frame_values(held):
    shown = SecretSafeExceptionReporterFilter().cleanse_value("body", f'{{"echo": "{HELD}"}}')
    assert HELD not in shown and REDACTED in shown
