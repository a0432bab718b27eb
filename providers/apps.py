from typing import Any

from django.apps import AppConfig

# The settings the outbound-URL guard reads (see providers/adapters/urlguard.py).
URL_GUARD_SETTINGS = frozenset({"PROVIDER_URL_ALLOW", "PROVIDER_URL_DENY", "FETCH_URL_ALLOW"})


def configure_url_guard(**_: Any) -> None:
    """Give the guard this process's allow and deny lists (it imports no Django itself)."""
    from django.conf import settings

    from .adapters import urlguard

    urlguard.configure(
        provider_allow=getattr(settings, "PROVIDER_URL_ALLOW", []),
        provider_deny=getattr(settings, "PROVIDER_URL_DENY", []),
        fetch_allow=getattr(settings, "FETCH_URL_ALLOW", []),
    )


def _setting_changed(setting: str, **kwargs: Any) -> None:
    if setting in URL_GUARD_SETTINGS:  # tests override them
        configure_url_guard()


class ProvidersConfig(AppConfig):
    name = "providers"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.core.signals import setting_changed
        from django.db.backends.signals import connection_created

        from project import lifecycle
        from project.database import restrict_sqlite_files

        from . import checks, keys, signals
        from .gateway.records import on_request_finished

        # Apps are ready before any process connects to the database: from its first
        # connection on, a SQLite file (secrets, key hashes, the request log) is readable by
        # its owner only.
        connection_created.connect(restrict_sqlite_files, dispatch_uid="project.database.restrict_sqlite_files")
        signals.connect()
        checks.register()
        configure_url_guard()
        setting_changed.connect(_setting_changed, dispatch_uid="providers.url_guard")
        # API keys' limits: each finished request is counted against its key (spend, tokens),
        # and what is counted is written before the process stops.
        keys.check_settings()
        on_request_finished(keys.settle)
        lifecycle.on_shutdown(keys.flush_all)
