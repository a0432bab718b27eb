"""`manage.py ensure_admin`: make sure an administrator can log in.

With ADMIN_USERNAME and ADMIN_PASSWORD set, that superuser is created or its password
updated. Otherwise, when no superuser exists, `admin` is created with a random password,
printed this once. ADMIN_PASSWORD without ADMIN_USERNAME is an error, not a guess: which
account's password it should set is not for us to pick.
"""

from __future__ import annotations

import os
import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Create the admin user if needed (ADMIN_USERNAME/ADMIN_PASSWORD, or a generated password)."
    requires_system_checks: list[str] = []

    def handle(self, *args: Any, **options: Any) -> None:
        User = get_user_model()
        username = os.environ.get("ADMIN_USERNAME", "")
        password = os.environ.get("ADMIN_PASSWORD", "")
        if password and not username:
            raise CommandError(
                "ADMIN_PASSWORD is set but ADMIN_USERNAME is not: set ADMIN_USERNAME to the "
                "administrator's name (for example ADMIN_USERNAME=admin), or unset "
                "ADMIN_PASSWORD to get a generated password."
            )
        if username and password:
            user, created = User.objects.get_or_create(username=username)
            user.is_staff = user.is_superuser = True
            user.set_password(password)
            user.save()
            self.stdout.write(f"admin user {username!r} {'created' if created else 'updated'} from ADMIN_USERNAME")
            return
        if User.objects.filter(is_superuser=True).exists():
            return
        username = username or "admin"
        password = secrets.token_urlsafe(12)
        User.objects.create_superuser(username=username, email="", password=password)
        bar = "=" * 60
        self.stdout.write(
            f"{bar}\nCreated the admin user (shown once):\n  username: {username}\n  password: {password}\n{bar}"
        )
