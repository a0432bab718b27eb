"""Email through Django's mail backend (EMAIL_URL): a plain-text subject and body.

The target is one address or several separated by commas. Sending is blocking I/O, so it
runs in a thread; the connection gets ALERT_TIMEOUT_S as its timeout. SMTP replies in the
5xx range (a refused recipient or sender, bad credentials) are permanent, 4xx and lost
connections are transient. A group (several providers in one notice) has one body line per
provider: its status, breaker, incident and reason.
"""

from __future__ import annotations

import asyncio
import smtplib

import httpx
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage, get_connection
from django.core.validators import validate_email

from . import DeliveryError, Notice

SUBJECT_PREFIX = "[gateway] "


def addresses(target: str) -> list[str]:
    found = [a.strip() for a in (target or "").split(",") if a.strip()]
    if not found:
        raise DeliveryError("no email address", permanent=True)
    for address in found:
        try:
            validate_email(address)
        except ValidationError:
            raise DeliveryError(f"invalid address: {address}", permanent=True) from None
    return found


def subject(notice: Notice) -> str:
    return " ".join(f"{SUBJECT_PREFIX}{notice.title}".split())  # one line, whatever the names hold


def body(notice: Notice) -> str:
    width = max(len(label) for label, _ in notice.lines())
    rows = [f"{label + ':':<{width + 1}} {value}" for label, value in notice.lines()]
    return "\n".join([notice.title, "", *rows, "", f"Console: {notice.console_url}", ""])


def message(notice: Notice, to: list[str]) -> EmailMessage:
    return EmailMessage(subject(notice), body(notice), settings.DEFAULT_FROM_EMAIL, to)


async def send(notice: Notice, target: str, client: httpx.AsyncClient | None = None) -> str:
    to = addresses(target)
    await asyncio.to_thread(_send, message(notice, to))
    return f"{subject(notice)} (to {len(to)} address{'es' if len(to) > 1 else ''})"


def _send(mail: EmailMessage) -> None:
    mail.connection = get_connection(fail_silently=False, timeout=settings.ALERT_TIMEOUT_S)
    try:
        mail.send()
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        raise DeliveryError(
            f"recipients refused (SMTP {', '.join(map(str, codes))})", permanent=all(code >= 500 for code in codes)
        ) from None
    except smtplib.SMTPResponseException as exc:
        text = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
        raise DeliveryError(
            f"SMTP {exc.smtp_code}: {' '.join(text.split())[:200]}", permanent=exc.smtp_code >= 500
        ) from None
    except smtplib.SMTPNotSupportedError as exc:
        raise DeliveryError(f"SMTP server does not support what was asked: {exc}", permanent=True) from None
    except (smtplib.SMTPException, OSError) as exc:  # disconnects, refused connections, timeouts
        raise DeliveryError(f"could not send: {type(exc).__name__}: {exc}"[:300], permanent=False) from None
