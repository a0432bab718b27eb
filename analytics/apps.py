from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    name = "analytics"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from project import lifecycle
        from providers.gateway.records import on_request_finished

        from .recorder import flush_all, record_request

        # The gateway announces each finished request; the request log keeps it.
        on_request_finished(record_request)
        # The queue is written before the process stops.
        lifecycle.on_shutdown(flush_all)
