"""Importing a configuration document: validate all of it, then write all of it, atomically.

The document is declarative: what a provider entry says is what the provider becomes, and
a key it leaves out takes its default. Secrets are the exception: a provider entry without
`api_key`/`api_keys` keeps its stored credentials, and a masked value (as `export_config`
writes it) keeps the stored secret it stands for, so export → import round-trips.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import yaml
from django.core.exceptions import ValidationError
from django.db import transaction

from providers import crypto
from providers.bounds import MAX_DOCUMENT_VALUES, BoundsError, check_json, check_yaml_text
from providers.models import AuditLog, Provider, ProviderModel, Route, RouteTarget, Secret

from .schema import (
    PRICE_KEYS,
    PROVIDER_KEYS,
    PROVIDER_SPECIAL,
    ROUTE_KEYS,
    ROUTE_SPECIAL,
    TARGET_KEYS,
    Key,
    allowed_paths,
    coerce,
    field_paths,
)
from .sections import sections, top_level


class ConfigError(Exception):
    """A document that cannot be applied; `errors` are "path: message" lines."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__("\n".join(errors))


@dataclass
class Summary:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    unchanged: int = 0

    def __str__(self) -> str:
        return (f"created {len(self.created)}, updated {len(self.updated)}, "
                f"deleted {len(self.deleted)}, unchanged {self.unchanged}")


def load_document(text: str) -> dict[str, Any]:
    """Parse YAML (JSON is YAML) into the document mapping, or raise ConfigError.

    Bounded before the YAML loader composes it (recursively: 3,000 nested brackets overflow the
    stack) and after (aliases can make a short text a huge tree; lone surrogates, NaN and
    infinities cannot be stored), so every way in (the API, `import_config`, the demo) is.
    """
    try:
        check_yaml_text(text)
    except BoundsError as exc:
        raise ConfigError([f"document: {exc}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError([f"{where}not valid YAML or JSON ({getattr(exc, 'problem', exc)})"]) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(["document: must be a mapping with providers, routes and alert_channels"])
    try:
        check_json(data, max_nodes=MAX_DOCUMENT_VALUES)
    except BoundsError as exc:
        raise ConfigError([f"{exc.path or 'document'}: {exc}"]) from None
    return data


@dataclass
class Staged:
    """One entry, validated and ready to save: the model object with its changes applied."""

    obj: Any
    created: bool
    changes: dict[str, list[Any]]
    after_save: list[Any] = field(default_factory=list)  # callables run after obj is saved


class Importer:
    """Stages every section of one document (all errors collected), then saves it all.

    A registered section (sections.py) stages its entries with the helpers below:
    `entries`, `check_unknown`, `assign`, `validate`, `secret_value` and `error`.
    """

    def __init__(self, doc: dict[str, Any], actor: str, prune: bool) -> None:
        self.doc = doc
        self.actor = actor
        self.prune = prune
        self.errors: list[str] = []

    # -- validation helpers ----------------------------------------------------------------

    def error(self, path: str, message: str) -> None:
        self.errors.append(f"{path}: {message}")

    def entries(self, section: str) -> list[tuple[str, dict[str, Any]]]:
        value = self.doc.get(section) or []
        if not isinstance(value, list):
            self.error(section, "must be a list")
            return []
        rows = []
        for i, entry in enumerate(value):
            path = f"{section}[{i}]"
            if not isinstance(entry, dict):
                self.error(path, "must be a mapping")
                continue
            rows.append((path, entry))
        return rows

    def check_unknown(self, path: str, entry: dict[str, Any], keys: tuple[Key, ...], special: tuple[str, ...]) -> None:
        allowed = allowed_paths(keys, special)
        for name, value in entry.items():
            if name not in allowed:
                self.error(f"{path}.{name}", f"unknown field (allowed: {', '.join(sorted(allowed))})")
                continue
            sub = allowed[name]
            if sub is not None:
                if not isinstance(value, dict):
                    self.error(f"{path}.{name}", "must be a mapping")
                    continue
                for inner in value:
                    if inner not in sub:
                        self.error(f"{path}.{name}.{inner}", f"unknown field (allowed: {', '.join(sorted(sub))})")

    def assign(self, path: str, obj: Any, entry: dict[str, Any], keys: tuple[Key, ...]) -> dict[str, list[Any]]:
        """Set each key's field from the entry (default when absent); returns the changes."""
        changes: dict[str, list[Any]] = {}
        for key in keys:
            container: Any = entry
            for part in key.path[:-1]:
                container = container.get(part) if isinstance(container, dict) else None
            present = isinstance(container, dict) and key.path[-1] in container
            if present:
                value, problem = coerce(container[key.path[-1]], key.type, key.nullable)
                if problem:
                    self.error(f"{path}.{key.dotted}", problem)
                    continue
            else:
                value = obj._meta.get_field(key.field).get_default()
            old = getattr(obj, key.field)
            if isinstance(old, Decimal) and value is not None:
                value = Decimal(str(value))
            if old != value:
                changes[key.dotted] = [_plain(old), _plain(value)]
                setattr(obj, key.field, value)
        return changes

    def validate(self, path: str, obj: Any, keys: tuple[Key, ...], exclude: list[str] | None = None) -> None:
        try:
            obj.full_clean(exclude=exclude, validate_unique=False)
        except ValidationError as exc:
            paths = field_paths(keys)
            for field_name, messages in exc.message_dict.items():
                where = paths.get(field_name, field_name)
                where = path if field_name == "__all__" else f"{path}.{where}"
                for message in messages:
                    self.error(where, message)

    def secret_value(self, path: str, value: Any, existing: list[Secret]) -> tuple[str, str] | None:
        """("env", NAME) | ("literal", value) | ("keep", hint); None after an error."""
        if not isinstance(value, str) or not value:
            self.error(path, "must be a non-empty string (a literal or env:NAME)")
            return None
        if value.startswith("env:"):
            name = value[4:]
            if not name or not name.replace("_", "").isalnum():
                self.error(path, "env: must be followed by an environment variable name")
                return None
            if (refused := crypto.env_reference_error(name)) is not None:
                self.error(path, refused)
                return None
            return ("env", name)
        for secret in existing:
            if secret.ciphertext and _decrypts_to(secret, value):
                return ("keep", secret.hint)
        if crypto.looks_masked(value):
            if any(s.hint == value for s in existing):
                return ("keep", value)
            self.error(path, "is a masked value with no stored secret behind it; give the value or env:NAME")
            return None
        return ("literal", value)

    # -- sections --------------------------------------------------------------------------

    def stage_providers(self) -> dict[str, Staged]:
        staged: dict[str, Staged] = {}
        existing = {p.name: p for p in Provider.objects.prefetch_related("secrets", "catalog")}
        for path, entry in self.entries("providers"):
            self.check_unknown(path, entry, PROVIDER_KEYS, PROVIDER_SPECIAL)
            name = entry.get("name")
            if not isinstance(name, str) or not name:
                self.error(f"{path}.name", "is required")
                continue
            if name in staged:
                self.error(f"{path}.name", f"duplicate provider {name!r}")
                continue
            obj = existing.get(name) or Provider(name=name)
            created = obj.pk is None
            if "kind" not in entry:
                self.error(f"{path}.kind", "is required")
            changes = self.assign(path, obj, entry, PROVIDER_KEYS)
            self.validate(path, obj, PROVIDER_KEYS)
            item = Staged(obj, created, changes)
            self.stage_secrets(path, entry, obj, item)
            self.stage_prices(path, entry, obj, item)
            staged[name] = item
        return staged

    def stage_secrets(self, path: str, entry: dict[str, Any], obj: Provider, item: Staged) -> None:
        if "api_key" in entry and "api_keys" in entry:
            self.error(f"{path}.api_keys", "give api_key or api_keys, not both")
            return
        if "api_key" in entry:
            values = [] if entry["api_key"] is None else [entry["api_key"]]
            base = f"{path}.api_key"
        elif "api_keys" in entry:
            values = entry["api_keys"] or []
            base = f"{path}.api_keys"
            if not isinstance(values, list):
                self.error(base, "must be a list")
                return
        else:
            return  # absent: the stored credentials stay as they are
        current = list(obj.secrets.all()) if obj.pk else []
        wanted = []
        for i, value in enumerate(values):
            where = base if base.endswith("api_key") else f"{base}[{i}]"
            parsed = self.secret_value(where, value, current)
            if parsed is not None:
                wanted.append(parsed)
        before = [s.display for s in current]
        after = [f"env:{v}" if k == "env" else (v if k == "keep" else crypto.mask(v)) for k, v in wanted]
        literal_changed = any(k == "literal" for k, _ in wanted)
        if before == after and not literal_changed:
            return
        item.changes["api_keys"] = [before, after]

        def save_secrets(provider: Provider = obj, wanted: list[tuple[str, str]] = wanted) -> None:
            kept = {s.hint: s for s in provider.secrets.all()}
            keep_ids = set()
            for position, (kind, value) in enumerate(wanted):
                if kind == "keep":
                    secret = kept[value]
                else:
                    secret = Secret(provider=provider)
                    if kind == "env":
                        secret.set_env(value)
                    else:
                        secret.set_value(value)
                secret.position = position
                secret.save()
                keep_ids.add(secret.pk)
            provider.secrets.exclude(pk__in=keep_ids).delete()

        item.after_save.append(save_secrets)

    def stage_prices(self, path: str, entry: dict[str, Any], obj: Provider, item: Staged) -> None:
        prices = entry.get("prices")
        names: list[Any] = entry["models"] if isinstance(entry.get("models"), list) else []
        if prices is not None and not isinstance(prices, dict):
            self.error(f"{path}.prices", "must be a mapping of model name to prices")
            return
        prices = prices or {}
        catalog = {m.name: m for m in obj.catalog.all()} if obj.pk else {}
        rows: list[ProviderModel] = []
        for model_name in dict.fromkeys([*names, *prices]):
            row = catalog.get(model_name) or ProviderModel(provider=obj, name=model_name,
                                                            source=ProviderModel.Source.CONFIG)
            spec = prices.get(model_name, {})
            where = f"{path}.prices.{model_name}"
            if not isinstance(spec, dict):
                self.error(where, "must be a mapping")
                continue
            for key in spec:
                if key not in {k.path[0] for k in PRICE_KEYS}:
                    self.error(f"{where}.{key}", "unknown field")
            changes = self.assign(where, row, spec, PRICE_KEYS) if model_name in prices else {}
            self.validate(where, row, PRICE_KEYS, exclude=["provider"])
            if row.pk is None or changes:
                if changes:
                    item.changes[f"prices.{model_name}"] = [None, changes]
                rows.append(row)

        def save_rows(provider: Provider = obj, rows: list[ProviderModel] = rows) -> None:
            for row in rows:
                row.provider = provider
                row.save()

        if rows:
            item.after_save.append(save_rows)

    def stage_routes(self, provider_names: set[str]) -> dict[str, Staged]:
        staged: dict[str, Staged] = {}
        existing = {r.name: r for r in Route.objects.prefetch_related("targets__provider")}
        for path, entry in self.entries("routes"):
            self.check_unknown(path, entry, ROUTE_KEYS, ROUTE_SPECIAL)
            name = entry.get("name")
            if not isinstance(name, str) or not name:
                self.error(f"{path}.name", "is required")
                continue
            if name in staged:
                self.error(f"{path}.name", f"duplicate route {name!r}")
                continue
            obj = existing.get(name) or Route(name=name)
            created = obj.pk is None
            changes = self.assign(path, obj, entry, ROUTE_KEYS)
            self.validate(path, obj, ROUTE_KEYS)
            targets = self.parse_targets(path, entry.get("targets"), provider_names)
            before = [[t.provider.name, t.model, t.weight] for t in obj.targets.all()] if obj.pk else []
            item = Staged(obj, created, changes)
            if targets is not None and targets != before:
                item.changes["targets"] = [before, targets]

                def save_targets(route: Route = obj, targets: list[list[Any]] = targets) -> None:
                    route.targets.all().delete()
                    by_name = {p.name: p for p in Provider.objects.filter(name__in=[t[0] for t in targets])}
                    RouteTarget.objects.bulk_create(
                        RouteTarget(route=route, provider=by_name[p], model=m, weight=w, position=i)
                        for i, (p, m, w) in enumerate(targets)
                    )

                item.after_save.append(save_targets)
            staged[name] = item
        return staged

    def parse_targets(self, path: str, value: Any, provider_names: set[str]) -> list[list[Any]] | None:
        where = f"{path}.targets"
        if not isinstance(value, list) or not value:
            self.error(where, "must be a non-empty list of {provider, model}")
            return None
        targets = []
        for i, target in enumerate(value):
            tpath = f"{where}[{i}]"
            if isinstance(target, str):  # shorthand "provider/model" or "provider"
                named, _, model = target.partition("/")
                target = {"provider": named, "model": model}
            if not isinstance(target, dict):
                self.error(tpath, "must be a mapping with provider and model")
                continue
            for key in target:
                if key not in TARGET_KEYS:
                    self.error(f"{tpath}.{key}", f"unknown field (allowed: {', '.join(TARGET_KEYS)})")
            provider = target.get("provider")
            if not isinstance(provider, str) or provider not in provider_names:
                self.error(f"{tpath}.provider", f"unknown provider {provider!r}")
                continue
            model = target.get("model") or ""
            if not isinstance(model, str):
                self.error(f"{tpath}.model", "must be a string")
                continue
            weight, problem = coerce(target.get("weight"), "float", True)
            if problem or (weight is not None and weight <= 0):
                self.error(f"{tpath}.weight", problem or "must be > 0")
                continue
            targets.append([provider, model, weight])
        return targets

    # -- run -------------------------------------------------------------------------------

    def run(self) -> Summary:
        allowed = top_level()
        for key in self.doc:
            if key not in allowed:
                self.error(key, f"unknown section (allowed: {', '.join(allowed)})")
        providers = self.stage_providers()
        existing_names = set(Provider.objects.values_list("name", flat=True))
        known = set(providers) | (set() if self.prune else existing_names)
        routes = self.stage_routes(known)
        extra = [(section, section.stage(self, known)) for section in sections()]
        if self.errors:
            raise ConfigError(self.errors)
        summary = Summary()
        with transaction.atomic():
            for kind, staged in (("provider", providers), ("route", routes),
                                 *((section.kind, items) for section, items in extra)):
                for name, item in staged.items():
                    if not item.created and not item.changes:
                        summary.unchanged += 1
                        continue
                    item.obj.save()
                    for step in item.after_save:
                        step()
                    action = "create" if item.created else "update"
                    (summary.created if item.created else summary.updated).append(f"{kind} {name}")
                    AuditLog.objects.create(actor=self.actor, action=action, object_type=kind,
                                            object_name=name, changes=item.changes)
            if self.prune:
                # Providers go last: the other sections' rows refer to them.
                pruned: list[tuple[str, type[Any], dict[str, Staged]]] = [
                    ("route", Route, routes), *((section.kind, section.model, items) for section, items in extra),
                    ("provider", Provider, providers)]
                for kind, model, staged in pruned:
                    for obj in model.objects.exclude(name__in=list(staged)):
                        obj.delete()
                        summary.deleted.append(f"{kind} {obj.name}")
                        AuditLog.objects.create(actor=self.actor, action="delete", object_type=kind,
                                                object_name=obj.name)
        return summary


def _decrypts_to(secret: Secret, value: str) -> bool:
    try:
        return secret.value() == value
    except crypto.DecryptionError:
        return False


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    return value


def apply_config(doc: dict[str, Any], *, actor: str, prune: bool = False) -> Summary:
    """Create or update everything the document names; with `prune`, delete what it does not.

    Raises ConfigError listing every problem, having changed nothing.
    """
    return Importer(doc, actor, prune).run()
