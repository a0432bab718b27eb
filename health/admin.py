"""Admin for alert channels; the target (URL or address) is write-only like a secret.

A channel's page shows where each provider stands for it (the alert state), and the list
has a "Send a test alert" action whose result is shown and recorded like any delivery.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from providers.admin import AuditedAdmin

from .alerts import send_test_alert
from .models import AlertChannel, AlertState


class AlertChannelForm(forms.ModelForm):
    target = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Webhook URL or email address(es). Write-only: leave empty to keep the stored one.",
    )

    class Meta:
        model = AlertChannel
        fields = [
            "name",
            "kind",
            "enabled",
            "target_env",
            "target",
            "providers",
            "failure_threshold",
            "success_threshold",
            "reminder_interval_s",
            "notify_recovery",
            "events",
        ]

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        target = data.get("target")
        if target:
            probe = AlertChannel(kind=data.get("kind") or "webhook")
            try:
                probe.validate_target(target)
            except ValidationError as exc:
                self.add_error("target", exc)
        elif not data.get("target_env") and not self.instance.target_ciphertext:
            self.add_error("target", "Give a target or an environment variable name.")
        return data

    def save(self, commit: bool = True) -> AlertChannel:
        channel = super().save(commit=False)
        if self.cleaned_data.get("target"):
            channel.set_target(self.cleaned_data["target"])
        elif self.cleaned_data.get("target_env"):
            channel.set_target_env(self.cleaned_data["target_env"])
        if commit:
            channel.save()
            self.save_m2m()
        return channel


@admin.register(AlertChannel)
class AlertChannelAdmin(AuditedAdmin):
    form = AlertChannelForm
    list_display = [
        "name",
        "kind",
        "enabled",
        "target_hint",
        "last_delivery_at",
        "last_delivery_error",
        "delivery_failures",
        "disabled_reason",
    ]
    list_filter = ["kind", "enabled"]
    search_fields = ["name"]
    readonly_fields = [
        "target_hint",
        "last_delivery_at",
        "last_delivery_error",
        "delivery_failures",
        "disabled_reason",
        "alert_state",
    ]
    filter_horizontal = ["providers"]
    actions = ["send_test_action"]

    @admin.action(description="Send a test alert")
    def send_test_action(self, request: HttpRequest, queryset: QuerySet[AlertChannel]) -> None:
        actor = request.user.get_username()
        for channel in queryset:
            outcome = send_test_alert(channel, actor=actor)
            if outcome.ok:
                self.message_user(request, f"{channel.name}: test alert sent ({outcome.detail}).", messages.SUCCESS)
            else:
                self.message_user(request, f"{channel.name}: test alert failed: {outcome.detail}", messages.ERROR)

    @admin.display(description="Alert state")
    def alert_state(self, channel: AlertChannel) -> str:
        if channel.pk is None:
            return "-"
        rows = AlertState.objects.filter(channel=channel).select_related("provider").order_by("provider__name")
        if not rows:
            return "No provider has gone bad for this channel yet."
        body = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    row.provider.name,
                    "alerting" if row.firing else "quiet",
                    row.bad_count,
                    row.good_count,
                    row.since or "-",
                    row.reason or "-",
                )
                for row in rows
            ),
        )
        return format_html(
            '<table id="alert-state"><thead><tr><th>Provider</th><th>State</th><th>Bad in a row</th>'
            "<th>Good in a row</th><th>Alerted at</th><th>Reason</th></tr></thead><tbody>{}</tbody></table>",
            body,
        )

    def save_model(self, request: HttpRequest, obj: AlertChannel, form: forms.ModelForm, change: bool) -> None:
        if obj.enabled and obj.disabled_reason:  # an operator turned it back on: start afresh
            obj.disabled_reason = ""
            obj.delivery_failures = 0
        super().save_model(request, obj, form, change)


@admin.register(AlertState)
class AlertStateAdmin(admin.ModelAdmin):
    """Read-only: the monitor owns these rows."""

    list_display = [
        "channel",
        "provider",
        "firing",
        "bad_count",
        "good_count",
        "since",
        "last_sent_at",
        "reminders",
        "updated_at",
    ]
    list_filter = ["firing", "channel"]
    search_fields = ["provider__name", "channel__name"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
