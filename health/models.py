"""Health state of providers, the log of state changes, probes and alert channels."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import models

from providers import crypto
from providers.models import Provider
from providers.validation import RangeValidator, validate_name, validate_provider_url

# The events API's names for what the history holds (health/feed.py maps each row to one).
# The first eight are the contract's; the rest name what it does not cover.
EVENT_TYPES = (
    "breaker.opened",
    "breaker.half_open",
    "breaker.closed",
    "provider.status",
    "provider.maintenance",
    "credential.rejected",
    "credential.exhausted",
    "alert.sent",
    "breaker.mode",
    "credential.rate_limited",
    "model.missing",
    "alert.failed",
    "provider.enabled",
    "provider.disabled",
    "health.reset",
    "provider.action",
    "request.failed",
    "incident.opened",
    "incident.acknowledged",
    "incident.resolved",
)


def validate_event_types(value: object) -> None:
    if not isinstance(value, list) or not all(isinstance(e, str) for e in value):
        raise ValidationError("must be a list of event types")
    unknown = sorted(set(value) - set(EVENT_TYPES))
    if unknown:
        raise ValidationError(f"unknown event types: {', '.join(unknown)} (known: {', '.join(EVENT_TYPES)})")


class AlertChannel(models.Model):
    """Where alerts go: a JSON webhook, a Slack-compatible webhook or email.

    The target (a URL that often embeds a token, or an address) is stored encrypted and
    shown masked, like a provider secret.
    """

    class Kind(models.TextChoices):
        WEBHOOK = "webhook", "JSON webhook"
        SLACK = "slack", "Slack-compatible webhook"
        EMAIL = "email", "Email"

    name = models.CharField(max_length=64, unique=True, validators=[validate_name])
    kind = models.CharField(max_length=10, choices=Kind.choices)
    target_env = models.CharField(max_length=128, blank=True, help_text="Read the target from this variable.")
    target_ciphertext = models.TextField(blank=True, editable=False)
    target_hint = models.CharField(max_length=64, blank=True, editable=False)
    enabled = models.BooleanField(default=True)
    providers = models.ManyToManyField(
        Provider, blank=True, related_name="alert_channels", help_text="Empty: every provider."
    )
    failure_threshold = models.PositiveSmallIntegerField(
        default=2, validators=[RangeValidator(1, 100)], help_text="Consecutive bad evaluations before an alert."
    )
    success_threshold = models.PositiveSmallIntegerField(
        default=2, validators=[RangeValidator(1, 100)], help_text="Consecutive good evaluations before a recovery."
    )
    reminder_interval_s = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[RangeValidator(60, 7 * 86400)],
        help_text="Remind while still down; empty: no reminders.",
    )
    notify_recovery = models.BooleanField(default=True)
    # A webhook channel that names event types (the events API's names: "breaker.opened",
    # "request.failed", ...) is an event feed: it receives each such event as it is recorded,
    # instead of the incident alerts above. Empty: alerts, as every channel.
    events = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_event_types],
        help_text="Webhook only: the event types to send; empty: incident alerts.",
    )
    # The last event a feed has looked at (health/forwarding.py); None until it starts.
    events_cursor = models.BigIntegerField(null=True, blank=True, editable=False)
    last_delivery_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_delivery_error = models.TextField(blank=True, editable=False)
    delivery_failures = models.PositiveIntegerField(default=0, editable=False)
    disabled_reason = models.CharField(max_length=200, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def save(self, *args: Any, **kwargs: Any) -> None:
        # A feed starts with what comes next (no history); one that stops forgets where it was.
        if not self.events:
            self.events_cursor = None
        elif self.events_cursor is None:
            self.events_cursor = HealthEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
        super().save(*args, **kwargs)

    sealed = crypto.SealedField("target_env", "target_ciphertext", "target_hint")

    def set_target(self, plaintext: str) -> None:
        # an email address is not a secret worth masking; a webhook URL with a token is
        self.sealed.seal(self, plaintext, hint=plaintext if self.kind == self.Kind.EMAIL else None)

    def clean(self) -> None:
        super().clean()
        # the admin refuses what the importer refuses: the server's own settings are no target
        if self.target_env and (why := crypto.env_reference_error(self.target_env)):
            raise ValidationError({"target_env": why})
        if self.events and self.kind != self.Kind.WEBHOOK:
            raise ValidationError({"events": "only a webhook channel sends events; leave it empty"})

    def set_target_env(self, name: str) -> None:
        self.sealed.refer(self, name)

    def target(self) -> str | None:
        return self.sealed.reveal(self)

    @property
    def display_target(self) -> str:
        return self.sealed.display(self)

    def validate_target(self, value: str) -> None:
        """Raise ValidationError when `value` is no valid target for this kind."""
        if self.kind == self.Kind.EMAIL:
            for address in value.split(","):
                validate_email(address.strip())
        else:
            validate_provider_url(value)
            if not value:
                raise ValidationError("must be a URL")


class Status(models.TextChoices):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"
    UNKNOWN = "unknown"
    DISABLED = "disabled"
    MAINTENANCE = "maintenance"


class ProviderHealth(models.Model):
    """The current health of one provider, as the monitor last evaluated it."""

    provider = models.OneToOneField(Provider, on_delete=models.CASCADE, related_name="health")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.UNKNOWN)
    # Why the status is what it is ("breaker forced open by an operator: unavailable",
    # "credential key-a rejected by the provider (HTTP 401); success rate 100% over 12 calls").
    reason = models.TextField(blank=True)
    score = models.FloatField(null=True, blank=True)
    score_parts = models.JSONField(default=dict, blank=True)
    breaker = models.CharField(max_length=14, default="closed")
    success_rate = models.FloatField(null=True, blank=True)
    p50_ms = models.FloatField(null=True, blank=True)
    p95_ms = models.FloatField(null=True, blank=True)
    calls = models.PositiveIntegerField(default=0)
    last_check_at = models.DateTimeField(null=True, blank=True)
    last_check_ok = models.BooleanField(null=True, blank=True)
    last_check_ms = models.FloatField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    detail = models.JSONField(default=dict, blank=True)
    # Debounce: a new status must be seen on consecutive evaluations before it is taken.
    pending_status = models.CharField(max_length=12, blank=True)
    pending_count = models.PositiveSmallIntegerField(default=0)
    # Flap damping (HEALTH_FLAP_SECONDS): when the pending status was first seen.
    pending_since = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "provider health"

    def __str__(self) -> str:
        return f"{self.provider.name}: {self.status}"


class ProbeResult(models.Model):
    """One scheduled check of a provider; kept for PROBE_RETENTION_DAYS."""

    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="probes")
    at = models.DateTimeField(db_index=True)
    ok = models.BooleanField()
    slow = models.BooleanField(default=False)
    latency_ms = models.FloatField()
    error = models.TextField(blank=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at"]
        indexes = [models.Index(fields=["provider", "-at"])]

    def __str__(self) -> str:
        return f"{self.provider.name} {self.at:%H:%M:%S} {'ok' if self.ok else 'failed'}"


class HealthEvent(models.Model):
    """A change worth an operator's attention: status, breaker, cooldown, alert or action."""

    class Kind(models.TextChoices):
        STATUS = "status"
        BREAKER = "breaker"
        COOLDOWN = "cooldown"
        ALERT = "alert"
        ACTION = "action"
        REQUEST = "request"  # a request every target failed (health/failures.py)
        INCIDENT = "incident"  # an incident opened, acknowledged or resolved (health/incidents.py)

    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, null=True, blank=True, related_name="events")
    provider_name = models.CharField(max_length=64, blank=True)  # kept if the provider goes
    at = models.DateTimeField(db_index=True)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    old = models.CharField(max_length=40, blank=True)
    new = models.CharField(max_length=40, blank=True)
    reason = models.TextField(blank=True)
    actor = models.CharField(max_length=150, blank=True)
    # What does not fit old/new: a failed request's route, id, providers tried and count.
    data = models.JSONField(default=dict, blank=True)
    # The incident this event belongs to (health/incidents.py collects a provider's events
    # while its incident is open).
    incident = models.ForeignKey("Incident", on_delete=models.SET_NULL, null=True, blank=True, related_name="events")

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["kind", "-at"]), models.Index(fields=["provider_name", "-at"])]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.provider_name} {self.kind} {self.old}→{self.new}"


class MonitorLease(models.Model):
    """Which monitor process leads; a lease that is not renewed expires and another takes over."""

    name = models.CharField(max_length=40, unique=True)
    holder = models.CharField(max_length=100)
    expires_at = models.DateTimeField()
    acquired_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name}: {self.holder} until {self.expires_at:%H:%M:%S}"


class AlertState(models.Model):
    """Where one provider stands for one alert channel: the consecutive bad and good
    evaluations and whether an alert is out. Kept in the database so a restarted (or a new
    leading) monitor neither alerts twice nor forgets an incident it must send a recovery for.
    The counts stop at their thresholds, so a long outage costs no write per evaluation."""

    channel = models.ForeignKey(AlertChannel, on_delete=models.CASCADE, related_name="states")
    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="alert_states")
    bad_count = models.PositiveIntegerField(default=0)
    good_count = models.PositiveIntegerField(default=0)
    firing = models.BooleanField(default=False, help_text="An alert was sent and no recovery yet.")
    since = models.DateTimeField(null=True, blank=True, help_text="When the alert went out.")
    last_sent_at = models.DateTimeField(null=True, blank=True, help_text="The alert or the last reminder.")
    reminders = models.PositiveIntegerField(default=0)
    reason = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["channel", "provider"]
        constraints = [models.UniqueConstraint(fields=["channel", "provider"], name="alert_state_unique")]

    def __str__(self) -> str:
        return f"{self.channel.name}/{self.provider.name}: {'firing' if self.firing else 'quiet'}"


class Incident(models.Model):
    """One outage of one provider (health/incidents.py): opened when it becomes unhealthy or its
    breaker opens, resolved when it is healthy again with its breaker closed. At most one is
    open per provider. Alerts are sent per incident; a muted one sends nothing until
    `muted_until`."""

    class State(models.TextChoices):
        OPEN = "open"
        RESOLVED = "resolved"

    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, null=True, blank=True, related_name="incidents")
    provider_name = models.CharField(max_length=64)  # kept if the provider goes
    state = models.CharField(max_length=10, choices=State.choices, default=State.OPEN)
    opened_at = models.DateTimeField(db_index=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    reason = models.TextField(blank=True)  # why it opened
    resolution = models.TextField(blank=True)  # why it resolved
    acknowledged_by = models.CharField(max_length=150, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    muted_until = models.DateTimeField(null=True, blank=True)
    muted_by = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["-opened_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["provider_name"], condition=models.Q(state="open"), name="one_open_incident_per_provider"
            )
        ]
        indexes = [models.Index(fields=["state", "-opened_at"])]

    def __str__(self) -> str:
        return f"#{self.pk} {self.provider_name} {self.state}"

    def muted_at(self, at: datetime) -> bool:
        return self.muted_until is not None and self.muted_until > at
