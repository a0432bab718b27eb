from django.apps import AppConfig


class HealthConfig(AppConfig):
    name = "health"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Plug the health app into the layers below it; none of them imports it."""
        from analytics.metrics import add_collector
        from project import lifecycle
        from providers import api as providers_api
        from providers import runtime, signals
        from providers.config import register_section
        from providers.gateway.records import on_request_finished

        from . import channel_config, events, hooks, readings, sessions
        from .failures import failure_log
        from .models import AlertChannel

        # Each runtime's engine events go to the event history and the consoles.
        runtime.runtime_created.append(hooks.attach)
        # Alert channels are configuration: in the document, reloaded on change, and their
        # webhook URLs scrubbed from upstream answers like the providers' own keys.
        register_section(channel_config.SECTION)
        signals.watch(AlertChannel, m2m=(AlertChannel.providers.through,))
        runtime.secret_sources.append(channel_config.alert_targets)
        # The operations API shows each provider's status and logs operators' breaker actions.
        providers_api.add_health_reader(readings.provider_health)
        signals.operator_acted.connect(events.note_operator_action, dispatch_uid="health.operator_action")
        # An API key past 80 % or 100 % of its budget is told to the alert channels.
        from .alerts import notify_key_budget

        signals.key_budget_crossed.connect(notify_key_budget, dispatch_uid="health.key_budget")
        # /metrics carries each provider's health gauges.
        add_collector(readings.health_metrics)
        sessions.connect()
        # A request no target served is a `request.failed` event (bounded: health/failures.py).
        on_request_finished(failure_log)
        lifecycle.on_shutdown(failure_log.drain)
