"""Django admin for the configuration: every save and delete is audited, secrets are
write-only (the form never renders a stored value), a new API key is shown once."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template import engines
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from . import crypto
from .demo import remove_demo
from .models import (
    ApiKey,
    AuditLog,
    BudgetPeriod,
    MaintenanceWindow,
    Provider,
    ProviderModel,
    Route,
    RouteQuerySet,
    RouteTarget,
    Scope,
    Secret,
)

admin.site.site_header = "AI gateway administration"
admin.site.site_title = "AI gateway"
admin.site.index_title = "Configuration"

SECRET_FIELDS = {"value", "ciphertext", "target", "target_ciphertext", "key_hash"}


def _masked(name: str, value: Any) -> Any:
    if name in SECRET_FIELDS:
        return crypto.mask(str(value)) if value else ""
    if hasattr(value, "pk"):
        return str(value)
    if isinstance(value, QuerySet | list | tuple):
        return [str(v) for v in value]
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    return str(value)


class AuditedAdmin(admin.ModelAdmin):
    """Writes an AuditLog row for every save and delete made through the admin."""

    def audit(self, request: HttpRequest, action: str, obj: Any, changes: dict[str, Any]) -> None:
        AuditLog.objects.create(
            actor=request.user.get_username(),
            action=action,
            object_type=obj._meta.model_name,
            object_name=str(getattr(obj, "name", obj)),
            changes=changes,
        )

    def save_model(self, request: HttpRequest, obj: Any, form: forms.ModelForm, change: bool) -> None:
        super().save_model(request, obj, form, change)
        changes = {name: _masked(name, form.cleaned_data.get(name)) for name in form.changed_data}
        self.audit(request, "update" if change else "create", obj, changes)

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        super().save_formset(request, form, formset, change)
        touched = [
            {"object": str(f.instance), "changed": sorted(f.changed_data)}
            for f in formset.forms
            if f.has_changed() and f.instance.pk
        ]
        if touched or formset.deleted_objects:
            self.audit(
                request,
                "update",
                form.instance,
                {
                    str(formset.model._meta.verbose_name_plural): touched,
                    "deleted": [str(o) for o in formset.deleted_objects],
                },
            )

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        self.audit(request, "delete", obj, {})
        super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for obj in queryset:
            self.audit(request, "delete", obj, {})
        super().delete_queryset(request, queryset)


class SecretForm(forms.ModelForm):
    value = forms.CharField(
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Write-only: leave empty to keep the stored value.",
    )

    class Meta:
        model = Secret
        fields = ["label", "position", "enabled", "env_var", "value"]

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        stored = bool(self.instance and self.instance.ciphertext)
        if self.has_changed() and not (data.get("value") or data.get("env_var") or stored):
            raise forms.ValidationError("Give a value or an environment variable name.")
        if data.get("value") and data.get("env_var"):
            raise forms.ValidationError("Give a value or an environment variable name, not both.")
        return data

    def save(self, commit: bool = True) -> Secret:
        secret = super().save(commit=False)
        value = self.cleaned_data.get("value")
        if value:
            secret.set_value(value)
        elif self.cleaned_data.get("env_var"):
            secret.set_env(self.cleaned_data["env_var"])
        if commit:
            secret.save()
        return secret


class SecretInline(admin.TabularInline):
    model = Secret
    form = SecretForm
    extra = 0
    fields = ["position", "label", "enabled", "env_var", "value", "hint"]
    readonly_fields = ["hint"]
    ordering = ["position", "id"]


class MaintenanceInline(admin.TabularInline):
    model = MaintenanceWindow
    extra = 0
    fields = ["starts_at", "ends_at", "reason", "created_by"]


class ProviderModelInline(admin.TabularInline):
    model = ProviderModel
    extra = 0
    fields = [
        "name",
        "capabilities",
        "context_window",
        "input_price_per_mtok",
        "output_price_per_mtok",
        "price_per_image",
        "price_per_kchar",
        "source",
    ]
    readonly_fields = ["source"]
    show_change_link = True


@admin.register(Provider)
class ProviderAdmin(AuditedAdmin):
    list_display = ["name_badge", "kind", "enabled", "priority", "weight", "base_url", "updated_at"]
    list_filter = ["kind", "enabled", "is_demo", "breaker_mode", "discovered"]
    search_fields = ["name", "base_url"]
    inlines = [SecretInline, ProviderModelInline, MaintenanceInline]
    actions = ["enable", "disable", "remove_demo_action"]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "name",
                    "kind",
                    "base_url",
                    "enabled",
                    "capabilities",
                    "configured_models",
                    "priority",
                    "weight",
                    "timeout_s",
                    "max_concurrent",
                    "options",
                ]
            },
        ),
        ("Retries", {"fields": ["retry_max_attempts", "retry_base_delay_s", "retry_max_delay_s"]}),
        (
            "Circuit breaker",
            {
                "fields": [
                    "breaker_mode",
                    "breaker_window_s",
                    "breaker_min_calls",
                    "breaker_failure_rate",
                    "breaker_consecutive_failures",
                    "breaker_break_s",
                    "breaker_max_break_s",
                    "breaker_half_open_probes",
                ]
            },
        ),
        (
            "Health checks",
            {
                "fields": [
                    "health_interval_s",
                    "health_timeout_s",
                    "health_probe",
                    "health_flap_checks",
                    "health_flap_seconds",
                ]
            },
        ),
        ("Request limits", {"fields": ["limit_requests_per_minute", "limit_tokens_per_minute"]}),
        ("Origin", {"fields": ["is_demo", "discovered"], "classes": ["collapse"]}),
    ]

    @admin.display(description="name", ordering="name")
    def name_badge(self, obj: Provider) -> str:
        if obj.is_demo:
            return format_html('{} <span class="demo-badge" style="color:#b45309">(demo)</span>', obj.name)
        return obj.name

    @admin.action(description="Enable the selected providers")
    def enable(self, request: HttpRequest, queryset: QuerySet[Provider]) -> None:
        for provider in queryset:
            provider.enabled = True
            provider.save(update_fields=["enabled", "updated_at"])
            self.audit(request, "enable", provider, {"enabled": [False, True]})

    @admin.action(description="Disable the selected providers")
    def disable(self, request: HttpRequest, queryset: QuerySet[Provider]) -> None:
        for provider in queryset:
            provider.enabled = False
            provider.save(update_fields=["enabled", "updated_at"])
            self.audit(request, "disable", provider, {"enabled": [True, False]})

    @admin.action(description="Remove the whole demo configuration")
    def remove_demo_action(self, request: HttpRequest, queryset: QuerySet[Provider]) -> None:
        count = remove_demo(actor=request.user.get_username())
        self.message_user(request, f"Removed {count} demo objects.", messages.SUCCESS)


@admin.register(ProviderModel)
class ProviderModelAdmin(AuditedAdmin):
    list_display = [
        "name",
        "provider",
        "context_window",
        "input_price_per_mtok",
        "output_price_per_mtok",
        "price_per_image",
        "price_per_kchar",
        "source",
    ]
    list_editable = ["input_price_per_mtok", "output_price_per_mtok", "price_per_image", "price_per_kchar"]
    list_filter = ["provider", "source"]
    search_fields = ["name", "provider__name"]


class RouteTargetInline(admin.TabularInline):
    model = RouteTarget
    extra = 0
    fields = ["position", "provider", "model", "weight"]
    ordering = ["position", "id"]
    autocomplete_fields = ["provider"]


@admin.register(Route)
class RouteAdmin(AuditedAdmin):
    list_display = ["name", "capability", "strategy", "chain", "max_attempts", "enabled", "is_demo"]
    list_filter = ["capability", "strategy", "enabled", "is_demo"]
    search_fields = ["name", "description"]
    inlines = [RouteTargetInline]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "name",
                    "capability",
                    "strategy",
                    "max_attempts",
                    "deadline_s",
                    "hedge",
                    "hedge_delay_s",
                    "cache_ttl_s",
                    "enabled",
                    "description",
                    "is_demo",
                ]
            },
        ),
        (
            "Retries on each target (empty: each provider's own)",
            {"fields": ["retry_max_attempts", "retry_base_delay_s", "retry_max_delay_s"]},
        ),
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Route]:
        return cast(RouteQuerySet, super().get_queryset(request)).with_targets()

    @admin.display(description="fallback chain")
    def chain(self, obj: Route) -> str:
        return " → ".join(str(t) for t in obj.targets.all())


NEW_KEY_PAGE = """{% extends "admin/base_site.html" %}
{% block content %}
<p class="warning">The new key <strong>{{ row.name }}</strong> ({{ row.prefix }}…) is shown once, store it now:</p>
<p><code id="new-api-key">{{ key }}</code></p>
<p><a href="{{ changelist }}">Back to the API keys</a> · <a href="{{ change }}">Edit this key</a></p>
{% endblock %}"""


class RoutesField(forms.Field):
    """A key's allowed routes as one line, comma-separated (empty: every route)."""

    widget = forms.TextInput

    def prepare_value(self, value: Any) -> Any:
        return ", ".join(value) if isinstance(value, list) else value

    def to_python(self, value: Any) -> list[str]:
        return [name.strip() for name in str(value or "").split(",") if name.strip()]


class ApiKeyForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(choices=Scope.choices, widget=forms.CheckboxSelectMultiple)
    routes = RoutesField(required=False, help_text="Route names, comma-separated; empty: every route.")
    budget_period = forms.ChoiceField(
        choices=BudgetPeriod.choices,
        required=False,
        initial=BudgetPeriod.MONTH,
        help_text="The budget's UTC calendar period (the week starts on Monday).",
    )

    class Meta:
        model = ApiKey
        fields = [
            "name",
            "scopes",
            "routes",
            "rate_limit_per_minute",
            "tokens_per_minute",
            "budget",
            "budget_period",
            "expires_at",
            "revoked_at",
        ]

    def clean_budget_period(self) -> str:
        return self.cleaned_data.get("budget_period") or BudgetPeriod.MONTH


@admin.register(ApiKey)
class ApiKeyAdmin(AuditedAdmin):
    form = ApiKeyForm
    list_display = ["name", "prefix", "scope_list", "budget_use", "last_used_at", "expires_at", "revoked_at"]
    list_filter = ["revoked_at", "budget_period"]
    search_fields = ["name", "prefix"]
    readonly_fields = ["prefix", "created_at", "last_used_at"]
    actions = ["revoke"]

    @admin.display(description="scopes")
    def scope_list(self, obj: ApiKey) -> str:
        return ", ".join(obj.scopes)

    @admin.display(description="spend in the period")
    def budget_use(self, obj: ApiKey) -> str:
        """As written to the database (a second or so behind the gateway's own count)."""
        from .keys import usage_in_period

        used = usage_in_period(obj.pk, obj.budget_period, timezone.now())
        spent = f"{used['spend'].normalize():f}"
        if obj.budget is None:
            return f"{spent} ({used['requests']} requests)"
        share = used["spend"] / obj.budget * 100 if obj.budget else Decimal(100)
        return f"{spent} of {obj.budget.normalize():f} per {obj.budget_period} ({share:.0f} %)"

    def save_model(self, request: HttpRequest, obj: ApiKey, form: forms.ModelForm, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        row, key = ApiKey.issue(
            obj.name,
            list(form.cleaned_data["scopes"]),
            routes=obj.routes,
            rate_limit_per_minute=obj.rate_limit_per_minute,
            tokens_per_minute=obj.tokens_per_minute,
            budget=obj.budget,
            budget_period=obj.budget_period,
            expires_at=obj.expires_at,
        )
        obj.pk, obj.prefix, obj.key_hash = row.pk, row.prefix, row.key_hash
        obj.created_at = row.created_at
        self.audit(request, "create", row, {"scopes": row.scopes, "prefix": row.prefix})
        request._new_api_key = key  # type: ignore[attr-defined]  # for response_add, this request only

    def response_add(self, request: HttpRequest, obj: ApiKey, post_url_continue: str | None = None) -> HttpResponse:
        """The new key, in the answer to the save itself. Not a message: messages travel in a
        signed (readable) cookie, and the key would sit in the browser's cookie jar."""
        key = getattr(request, "_new_api_key", None)
        if key is None:
            return super().response_add(request, obj, post_url_continue)
        context = {
            **self.admin_site.each_context(request),
            "title": "New API key",
            "key": key,
            "row": obj,
            "opts": self.opts,
            "changelist": reverse("admin:providers_apikey_changelist"),
            "change": reverse("admin:providers_apikey_change", args=[obj.pk]),
        }
        response = HttpResponse(engines["django"].from_string(NEW_KEY_PAGE).render(context, request))
        response["Cache-Control"] = "no-store"  # not in any cache, nor the browser's history
        return response

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        for key in queryset.filter(revoked_at__isnull=True):
            key.revoked_at = timezone.now()
            key.save(update_fields=["revoked_at"])
            self.audit(request, "revoke", key, {})


@admin.register(AuditLog)
class AuditLogAdmin(admin.ModelAdmin):
    list_display = ["at", "actor", "action", "object_type", "object_name"]
    list_filter = ["action", "object_type", "actor"]
    search_fields = ["object_name", "actor"]
    readonly_fields = ["at", "actor", "action", "object_type", "object_name", "changes"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
