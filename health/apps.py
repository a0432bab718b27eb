from django.apps import AppConfig


class HealthConfig(AppConfig):
    name = "health"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from providers.runtime import runtime_created

        from . import hooks, sessions

        runtime_created.append(hooks.attach)
        sessions.connect()
