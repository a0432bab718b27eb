"""`python manage.py send_test_alert NAME`: send a test notice through one alert channel.

The result is printed and recorded like any delivery (a HealthEvent, the channel's last
delivery error); the exit status is 1 when it failed.
"""

from __future__ import annotations

import getpass
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from health.alerts import send_test_alert
from health.models import AlertChannel


class Command(BaseCommand):
    help = "Send a test alert through the named alert channel and show the result."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="the alert channel's name")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            channel = AlertChannel.objects.get(name=options["name"])
        except AlertChannel.DoesNotExist:
            names = ", ".join(AlertChannel.objects.values_list("name", flat=True)) or "none"
            raise CommandError(f"no alert channel named {options['name']!r} (channels: {names})") from None
        outcome = send_test_alert(channel, actor=f"{_user()} (manage.py send_test_alert)")
        if not outcome.ok:
            raise CommandError(f"{channel.name}: test alert failed: {outcome.detail}")
        self.stdout.write(self.style.SUCCESS(f"{channel.name}: test alert sent ({outcome.detail})"))
        if not channel.enabled:
            self.stdout.write(
                self.style.WARNING(f"{channel.name} is disabled: {channel.disabled_reason or 'by an operator'}")
            )


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in a container: still say where it came from
        return "shell"
