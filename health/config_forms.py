"""The console's configuration forms: typed fields in, one configuration entry out.

A form only turns what a browser posts (strings) into the types an entry takes (numbers,
lists, booleans); every rule (ranges, choices, a URL the guard accepts, an `env:` name that is
not one of the server's own settings, a kind's options) is the importer's, applied when the
entry is saved (health/config_store.py). The importer's errors come back as
`providers[0].breaker.failure_rate: must be > 0 and <= 1` and are shown at the field whose
config path that is (`attach_errors`).

A field's name is its key's config path with `__` between groups (`breaker__failure_rate`,
`options__outage__period_s`). A field left empty leaves its key out of the entry, so the key
takes its default (for the keys that may be null, the default is null: no limit, no cache).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from django import forms
from django.conf import settings

from health.scores import Damping
from providers.config import ProviderConfig, RouteConfig
from providers.models import BreakerMode, Capability, Kind, ProbeMode, Strategy

SECRET_HELP = (
    "Write-only: the stored key is never shown again. Leave empty to keep it; "
    "env:NAME reads it from that environment variable of the server."
)

SIMULATED_HELP = {
    "options__error_rate": "Share of calls answered with a 503 (0 to 1). 1 makes every call fail: "
    "watch the breaker open and the route fall back.",
    "options__rate_limit_rate": "Share of calls answered with a 429 rate limit (with Retry-After).",
    "options__exhausted_rate": "Share of calls answered with a 429 quota exhausted (the provider is then skipped).",
    "options__timeout_rate": "Share of calls that hang past the attempt's timeout.",
    "options__stream_cut_rate": "Share of streams cut off mid-way.",
    "options__latency_ms": "Mean answer time in milliseconds.",
    "options__latency_jitter_ms": "Uniform jitter around that mean.",
    "options__outage__period_s": "An outage schedule: every this many seconds…",
    "options__outage__down_s": "…every call fails for this many seconds (with the period: a scheduled outage).",
    "options__reply": "The chat answer's text (empty: a generated one).",
    "options__seed": "Seed of the random draws, for repeatable drills.",
}


def _number(label: str, *, whole: bool = False, help_text: str = "", step: str = "any") -> forms.Field:
    attrs = {"inputmode": "numeric" if whole else "decimal"}
    if whole:
        return forms.IntegerField(label=label, required=False, help_text=help_text, widget=forms.NumberInput(attrs))
    return forms.FloatField(
        label=label, required=False, help_text=help_text, widget=forms.NumberInput({**attrs, "step": step})
    )


def _choice(label: str, choices: Any, help_text: str = "") -> forms.ChoiceField:
    return forms.ChoiceField(label=label, choices=[("", "Default"), *choices], required=False, help_text=help_text)


# The fieldsets of the provider form, in order: (legend, field names).
PROVIDER_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Provider", ("name", "kind", "base_url", "enabled")),
    ("Credentials", ("api_key", "clear_api_key")),
    ("Models and capabilities", ("models", "capabilities")),
    ("Traffic", ("priority", "weight", "timeout_s", "max_concurrent", "limits__requests_per_minute",
                 "limits__tokens_per_minute", "cache__ttl_s")),
    ("Retry", ("retry__max_attempts", "retry__base_delay_s", "retry__max_delay_s")),
    ("Circuit breaker", ("breaker__mode", "breaker__window_s", "breaker__min_calls", "breaker__failure_rate",
                         "breaker__consecutive_failures", "breaker__break_s", "breaker__max_break_s",
                         "breaker__half_open_probes")),
    ("Health check", ("health_check__interval_s", "health_check__timeout_s", "health_check__probe",
                      "health_check__flap_checks", "health_check__flap_seconds")),
)  # fmt: skip

# Kind-specific options with a typed field of their own; the rest go in `options_extra`.
KIND_OPTIONS: dict[str, tuple[str, ...]] = {
    "simulated": tuple(SIMULATED_HELP),
}

LIST_SPLIT = re.compile(r"[\s,]+")


class ProviderForm(forms.Form):
    name = forms.CharField(label="Name", max_length=64, help_text="A slug, unique; what routes and the API call it.")
    kind = forms.ChoiceField(label="Kind", choices=Kind.choices)
    base_url = forms.CharField(
        label="Base URL",
        required=False,
        max_length=500,
        help_text="Empty: the kind's public default. env:NAME reads it from the server's environment.",
        widget=forms.TextInput({"spellcheck": "false", "autocomplete": "off"}),
    )
    enabled = forms.BooleanField(label="Enabled", required=False)
    api_key = forms.CharField(
        label="API key",
        required=False,
        strip=True,
        help_text=SECRET_HELP,
        widget=forms.PasswordInput({"autocomplete": "new-password", "spellcheck": "false"}, render_value=False),
    )
    clear_api_key = forms.BooleanField(label="Remove the stored key", required=False)
    models = forms.CharField(
        label="Models",
        required=False,
        help_text="Separated by commas or new lines. Empty: discovered from the provider.",
        widget=forms.Textarea({"rows": 2, "spellcheck": "false"}),
    )
    capabilities = forms.MultipleChoiceField(
        label="Capabilities",
        required=False,
        choices=[(value, value) for value in Capability.values],  # as the configuration file spells them
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: what the kind supports.",
    )
    priority = _number("Priority", whole=True, help_text="Lower goes first.")
    weight = _number("Weight")
    timeout_s = _number("Attempt timeout (s)", help_text="Empty: by capability (30 s text, 120 s images).")
    max_concurrent = _number("Max concurrent calls", whole=True)
    limits__requests_per_minute = _number("Requests per minute", whole=True, help_text="Empty: no limit.")
    limits__tokens_per_minute = _number("Tokens per minute", whole=True, help_text="Empty: no limit.")
    cache__ttl_s = _number("Response cache TTL (s)", help_text="Empty or 0: no cache.")
    retry__max_attempts = _number("Attempts per request", whole=True, help_text="The first included; 1: no retry.")
    retry__base_delay_s = _number("Base delay (s)")
    retry__max_delay_s = _number("Max delay (s)")
    breaker__mode = _choice("Mode", BreakerMode.choices)
    breaker__window_s = _number("Window (s)", help_text="Empty: max(60 s, 2 × timeout).")
    breaker__min_calls = _number("Min calls", whole=True)
    breaker__failure_rate = _number("Failure rate", help_text="0 to 1.")
    breaker__consecutive_failures = _number("Consecutive failures", whole=True, help_text="0 turns the rule off.")
    breaker__break_s = _number("Break (s)")
    breaker__max_break_s = _number("Max break (s)")
    breaker__half_open_probes = _number("Half-open probes", whole=True)
    health_check__interval_s = _number("Interval (s)")
    health_check__timeout_s = _number("Timeout (s)")
    health_check__probe = _choice("Probe", ProbeMode.choices)
    health_check__flap_checks = _number("Flap damping: evaluations", whole=True)
    health_check__flap_seconds = _number("Flap damping: seconds")
    options__error_rate = _number("Error rate")
    options__rate_limit_rate = _number("Rate-limit rate")
    options__exhausted_rate = _number("Quota-exhausted rate")
    options__timeout_rate = _number("Timeout rate")
    options__stream_cut_rate = _number("Stream-cut rate")
    options__latency_ms = _number("Latency (ms)")
    options__latency_jitter_ms = _number("Latency jitter (ms)")
    options__outage__period_s = _number("Outage period (s)")
    options__outage__down_s = _number("Outage length (s)")
    options__reply = forms.CharField(label="Reply", required=False, max_length=2000)
    options__seed = _number("Seed", whole=True)
    options_extra = forms.CharField(
        label="Other options (JSON)",
        required=False,
        help_text="Settings particular to the kind, as a JSON object.",
        widget=forms.Textarea({"rows": 3, "spellcheck": "false", "class": "mono"}),
    )

    def __init__(self, *args: Any, kind: str = "", editing: bool = False, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        self.editing = editing
        self.kind_shown = kind
        for name, text in SIMULATED_HELP.items():
            self.fields[name].help_text = text
        self._show_flap_defaults()
        if editing:
            self.fields["name"].disabled = True  # the name is the entry's key: no renaming here
            self.fields["name"].help_text = "The name is the provider's key; it cannot be changed here."

    def _show_flap_defaults(self) -> None:
        # Read at each form, not at import: the global settings are what an empty field means now.
        flap = Damping.of(getattr(settings, "HEALTH_FLAP_CHECKS", None), getattr(settings, "HEALTH_FLAP_SECONDS", None))
        defaults = {
            "health_check__flap_checks": ("Consecutive evaluations a status change must be seen on", flap.checks),
            "health_check__flap_seconds": ("How long (s) a status change must last, 0: no minimum", flap.seconds),
        }
        for name, (what, default) in defaults.items():
            self.fields[name].help_text = f"{what}. Empty: the global default ({default:g})."
            self.fields[name].widget.attrs["placeholder"] = f"global default ({default:g})"

    def clean_models(self) -> list[str]:
        return [m for m in LIST_SPLIT.split(self.cleaned_data.get("models") or "") if m]

    def clean_options_extra(self) -> dict[str, Any]:
        text = (self.cleaned_data.get("options_extra") or "").strip()
        if not text:
            return {}
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc.msg} (line {exc.lineno}).") from None
        if not isinstance(value, dict):
            raise forms.ValidationError('Give a JSON object, e.g. {"probe": "models"}.')
        return value

    # -- layout for the template --------------------------------------------------------------

    def groups(self) -> list[tuple[str, list[forms.BoundField]]]:
        return [(legend, [self[name] for name in names]) for legend, names in PROVIDER_GROUPS]

    def option_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in KIND_OPTIONS.get(self.kind_shown, ())]


def provider_defaults(kind: str) -> dict[str, Any]:
    """A new provider's form: every key at the default the importer would give it."""
    entry = ProviderConfig.model_validate({"name": "new", "kind": kind}).model_dump(exclude={"name"})
    return {**flatten(entry, kind), "name": "", "kind": kind}


def route_defaults() -> dict[str, Any]:
    entry = RouteConfig.model_validate({"name": "new", "targets": ["p/m"]}).model_dump(exclude={"name", "targets"})
    return {**route_initial(entry), "name": ""}


def option_names(kind: str) -> tuple[str, ...]:
    """The kind's options with a typed field, as `options` keys (`outage.period_s` as a path)."""
    return tuple(name.removeprefix("options__") for name in KIND_OPTIONS.get(kind, ()))


def flatten(entry: dict[str, Any], kind: str) -> dict[str, Any]:
    """A provider entry as the form's initial values (the inverse of `provider_entry`)."""
    initial: dict[str, Any] = {}
    for name in ProviderForm.base_fields:
        path = name.split("__")
        value: Any = entry
        for part in path:
            value = value.get(part) if isinstance(value, dict) else None
        if value is not None:
            initial[name] = value
    initial["models"] = "\n".join(entry.get("models", []))
    initial["capabilities"] = list(entry.get("capabilities", []))
    initial["enabled"] = entry.get("enabled", True)
    extra = dict(entry.get("options") or {})
    for option in option_names(kind):
        head, _, tail = option.partition("__")
        if tail and isinstance(extra.get(head), dict):
            rest = {k: v for k, v in extra[head].items() if k != tail}
            extra[head] = rest
            if not rest:
                del extra[head]
        elif not tail:
            extra.pop(head, None)
    initial["options_extra"] = json.dumps(extra, indent=2) if extra else ""
    initial.pop("api_key", None)  # write-only: never rendered back
    return initial


def _put(entry: dict[str, Any], path: list[str], value: Any) -> None:
    container = entry
    for part in path[:-1]:
        child = container.get(part)
        if not isinstance(child, dict):
            child = container[part] = {}
        container = child
    if value is None:
        container.pop(path[-1], None)
    else:
        container[path[-1]] = value


SKIPPED = {"name", "api_key", "clear_api_key", "options_extra", "models", "capabilities", "kind", "enabled"}


def provider_entry(base: dict[str, Any], data: dict[str, Any], kind: str) -> dict[str, Any]:
    """The entry to save: `base` (the provider's exported entry, or {} for a new one) with what
    the form gives over it. Keys the form has no field for (prices, kind options it does not
    type) stay as they are; a field left empty leaves its key out (its default)."""
    entry = json.loads(json.dumps(base))  # a deep copy of plain JSON
    entry["name"] = data["name"]
    entry["kind"] = kind
    entry["enabled"] = bool(data.get("enabled"))
    entry["models"] = data.get("models") or []
    entry["capabilities"] = data.get("capabilities") or []
    for name, value in data.items():
        if name in SKIPPED or name.startswith("options__"):
            continue
        _put(entry, name.split("__"), None if value in ("", None) else value)
    for group in ("retry", "breaker", "health_check", "limits", "cache"):
        if entry.get(group) == {}:
            del entry[group]
    options = dict(data.get("options_extra") or {})
    for option in option_names(kind):
        value = data.get(f"options__{option}")
        if value not in ("", None):
            _put(options, option.split("__"), value)
    if options:
        entry["options"] = options
    else:
        entry.pop("options", None)
    secret = (data.get("api_key") or "").strip()
    if data.get("clear_api_key"):
        entry.pop("api_keys", None)
        entry["api_key"] = None
    elif secret:
        entry.pop("api_keys", None)
        entry["api_key"] = secret
    else:  # absent: the importer keeps the stored keys
        entry.pop("api_key", None)
        entry.pop("api_keys", None)
    return entry


# -- routes ------------------------------------------------------------------------------------


class RouteForm(forms.Form):
    name = forms.CharField(label="Name", max_length=100, help_text='What a client puts in "model".')
    capability = forms.ChoiceField(label="Capability", choices=Capability.choices)
    strategy = forms.ChoiceField(
        label="Strategy", choices=Strategy.choices, help_text="priority: the targets in the order below."
    )
    max_attempts = _number("Max attempts", whole=True, help_text="Across the whole chain.")
    deadline_s = _number("Deadline (s)", help_text="Empty: 60 s text, 20 s speech, 180 s images.")
    hedge = forms.BooleanField(label="Hedge (send a second request if the first is slow; billed)", required=False)
    hedge_delay_s = _number("Hedge delay (s)", help_text="Empty: adaptive (p95 time to first token).")
    cache__ttl_s = _number("Response cache TTL (s)", help_text="Empty: the first target's provider's; 0: none.")
    retry__max_attempts = _number(
        "Retries: attempts per target", whole=True, help_text="The first included. Empty: each provider's own."
    )
    retry__base_delay_s = _number("Retries: first backoff (s)", help_text="Empty: each provider's own.")
    retry__max_delay_s = _number("Retries: longest backoff (s)", help_text="Empty: each provider's own.")
    enabled = forms.BooleanField(label="Enabled", required=False)
    description = forms.CharField(label="Description", required=False, max_length=200)

    def __init__(self, *args: Any, editing: bool = False, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        if editing:
            self.fields["name"].disabled = True
            self.fields["name"].help_text = "The name is the route's key; it cannot be changed here."


@dataclass
class TargetRow:
    """One row of a route's chain on the form; `errors` are the importer's, for this row."""

    provider: str = ""
    model: str = ""
    weight: str = ""
    errors: list[str] = field(default_factory=list)


MAX_TARGETS = 50


def target_rows(post: Any) -> list[TargetRow]:
    """The chain as posted: three parallel lists, in the order the rows are on the page (the
    page reorders rows by moving them, so the order of the values is the order of the chain)."""
    providers = post.getlist("target_provider")[:MAX_TARGETS]
    models = post.getlist("target_model")
    weights = post.getlist("target_weight")
    rows = []
    for i, provider in enumerate(providers):
        rows.append(
            TargetRow(
                provider.strip(),
                (models[i] if i < len(models) else "").strip(),
                (weights[i] if i < len(weights) else "").strip(),
            )
        )
    return rows


def apply_row_op(rows: list[TargetRow], op: str) -> list[TargetRow]:
    """A row button pressed without JavaScript: `add`, `remove:N`, `up:N`, `down:N`."""
    verb, _, index = op.partition(":")
    if verb == "add":
        return [*rows, TargetRow()] if len(rows) < MAX_TARGETS else rows
    try:
        i = int(index)
    except ValueError:
        return rows
    if not 0 <= i < len(rows):
        return rows
    rows = list(rows)
    if verb == "remove":
        del rows[i]
    elif verb == "up" and i > 0:
        rows[i - 1], rows[i] = rows[i], rows[i - 1]
    elif verb == "down" and i < len(rows) - 1:
        rows[i + 1], rows[i] = rows[i], rows[i + 1]
    return rows


def target_entry(row: TargetRow) -> dict[str, Any] | str:
    """A row as the entry's target; a weight that is not a number goes as it is written, for
    the importer to name (`must be a number`)."""
    target: dict[str, Any] = {"provider": row.provider, "model": row.model}
    if row.weight:
        try:
            target["weight"] = float(row.weight)
        except ValueError:
            target["weight"] = row.weight
    return target


def route_entry(base: dict[str, Any], data: dict[str, Any], rows: list[TargetRow]) -> dict[str, Any]:
    entry = {k: v for k, v in base.items() if k != "targets"}
    entry["name"] = data["name"]
    entry["hedge"] = bool(data.get("hedge"))
    entry["enabled"] = bool(data.get("enabled"))
    for name, value in data.items():
        if name in ("name", "hedge", "enabled"):
            continue
        _put(entry, name.split("__"), None if value in ("", None) else value)
    for section in ("cache", "retry"):
        if section in entry and not any(v is not None for v in (entry[section] or {}).values()):
            del entry[section]
    entry["targets"] = [target_entry(row) for row in rows]
    return entry


def route_initial(entry: dict[str, Any]) -> dict[str, Any]:
    initial = {name: entry.get(name) for name in RouteForm.base_fields if name in entry}
    for section in ("cache", "retry"):
        for key, value in (entry.get(section) or {}).items():
            if value is not None and f"{section}__{key}" in RouteForm.base_fields:
                initial[f"{section}__{key}"] = value
    initial.setdefault("enabled", True)
    return initial


# -- the importer's errors, at their fields ------------------------------------------------------

ERROR_LINE = re.compile(r"^(?P<section>providers|routes)\[0\](?:\.(?P<path>[^:]*))?: (?P<message>.*)$", re.S)
TARGET_PATH = re.compile(r"^targets\[(?P<index>\d+)\](?:\.(?P<key>\w+))?$")


def attach_errors(form: forms.Form, errors: list[str], rows: list[TargetRow] | None = None) -> None:
    """Put each "path: message" line of the importer at the form field (or target row) whose
    config path it names; what names no field goes to the form's own errors."""
    for line in errors:
        match = ERROR_LINE.match(line)
        if match is None:
            form.add_error(None, line)
            continue
        path, message = match["path"] or "", match["message"]
        target = TARGET_PATH.match(path)
        if target is not None and rows is not None and int(target["index"]) < len(rows):
            key = target["key"]
            rows[int(target["index"])].errors.append(f"{key}: {message}" if key else message)
            continue
        name = path.replace(".", "__")
        if name == "api_keys" or name.startswith("api_keys["):
            name = "api_key"
        if name == "options":
            name = _option_field(form, message)
        if name in form.fields and not form.fields[name].disabled:
            form.add_error(name, message)
        else:
            form.add_error(None, f"{path or 'entry'}: {message}")


def _option_field(form: forms.Form, message: str) -> str:
    """An options error names its option first ("error_rate must be ..."): its typed field
    when the kind has one, else the JSON of the other options."""
    kind = getattr(form, "kind_shown", "")
    for option in option_names(kind):
        if message.startswith(option.split("__")[0] + " ") or message.startswith(option.split("__")[-1] + " "):
            return f"options__{option}"
    return "options_extra"
