"""Importing a configuration document: validate all of it, then write all of it, atomically.

Each entry is validated with its model (schema.py; errors as "path: message" lines,
messages.py), then the model row it describes with the row's own `full_clean`.

The document is declarative: what a provider entry says is what the provider becomes, and
a key it leaves out takes its default. Its catalog too: a model the configuration made and
the entry no longer names (in `models` or `prices`) is deleted, and a model it does not price
has unknown prices (stage_prices). Secrets are the exception: a provider entry without
`api_key`/`api_keys` keeps its stored credentials, and a masked value (as `export_config`
writes it) keeps the stored secret it stands for, so export → import round-trips.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

import yaml
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import DecimalField
from pydantic import BaseModel
from pydantic import ValidationError as EntryError

from providers import crypto
from providers.bounds import MAX_DOCUMENT_VALUES, BoundsError, check_json, check_yaml_text
from providers.models import AuditLog, Provider, ProviderModel, Route, RouteTarget, Secret

from .exporter import price_spec
from .messages import error_lines
from .schema import (
    MONEY_KEYS,
    PRICE_KEYS,
    PROVIDER_KEYS,
    ROUTE_KEYS,
    TARGET_KEYS,
    Key,
    PriceConfig,
    ProviderConfig,
    RouteConfig,
    TargetConfig,
    field_paths,
)
from .sections import sections, top_level

E = TypeVar("E", bound=BaseModel)


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
        return (
            f"created {len(self.created)}, updated {len(self.updated)}, "
            f"deleted {len(self.deleted)}, unchanged {self.unchanged}"
        )


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
    `named_entries`, `assign`, `validate`, `secret_value` and `error`.
    """

    def __init__(self, doc: dict[str, Any], actor: str, prune: bool) -> None:
        self.doc = doc
        self.actor = actor
        self.prune = prune
        self.errors: list[str] = []
        self.names: dict[str, set[str]] = {}  # section -> every name its entries give

    # -- validation helpers ----------------------------------------------------------------

    def error(self, path: str, message: str) -> None:
        self.errors.append(f"{path}: {message}")

    def named_entries(self, section: str, kind: str, model: type[E]) -> list[tuple[str, E]]:
        """The section's entries that are valid `model`s, with their paths (`routes[2]`).

        A section is a list of mappings, each with a name of its own: a non-empty string no
        other entry of the section has. Every problem is reported; an entry with one is
        left out, but its name is still in `names[section]`, so an entry referring to it is
        not reported as well.
        """
        value = self.doc.get(section)
        names = self.names.setdefault(section, set())
        if value is None:  # `routes:` with nothing after it: none
            return []
        if not isinstance(value, list):
            self.error(section, "must be a list")
            return []
        valid = []
        for i, raw in enumerate(value):
            path = f"{section}[{i}]"
            if not isinstance(raw, dict):
                self.error(path, "must be a mapping")
                continue
            name = raw.get("name")
            if not isinstance(name, str) or not name:
                self.error(f"{path}.name", "is required" if name is None else "must be a non-empty string")
                continue
            if name in names:
                self.error(f"{path}.name", f"duplicate {kind.replace('_', ' ')} {name!r}")
                continue
            names.add(name)
            try:
                valid.append((path, model.model_validate(raw)))
            except EntryError as exc:
                self.errors += error_lines(exc, model, path)
        return valid

    def assign(self, obj: Any, entry: BaseModel, keys: tuple[Key, ...]) -> dict[str, list[Any]]:
        """Set each key's field from the validated entry; returns the changes by dotted path."""
        changes: dict[str, list[Any]] = {}
        for key in keys:
            value = key.read(entry)
            old = getattr(obj, key.field)
            if value is not None and isinstance(obj._meta.get_field(key.field), DecimalField):
                value = Decimal(str(value))  # a price: exact, and equal to the stored one when unchanged
            if old != value:
                changes[key.dotted] = [_plain(old), _plain(value)]
                setattr(obj, key.field, value)
        return changes

    def validate(self, path: str, obj: Any, keys: tuple[Key, ...], exclude: list[str] | None = None) -> None:
        """The model's own validation (choices, ranges, `clean`), reported at config paths."""
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
        for path, entry in self.named_entries("providers", "provider", ProviderConfig):
            obj = existing.get(entry.name) or Provider(name=entry.name)
            item = Staged(obj, obj.pk is None, self.assign(obj, entry, PROVIDER_KEYS))
            self.validate(path, obj, PROVIDER_KEYS)
            self.stage_secrets(path, entry, obj, item)
            self.stage_prices(path, entry, obj, item)
            staged[entry.name] = item
        return staged

    def stage_secrets(self, path: str, entry: ProviderConfig, obj: Provider, item: Staged) -> None:
        given = entry.model_fields_set
        if "api_key" in given and "api_keys" in given:
            self.error(f"{path}.api_keys", "give api_key or api_keys, not both")
            return
        if "api_key" in given:
            values = [] if entry.api_key is None else [entry.api_key]
            base = f"{path}.api_key"
        elif "api_keys" in given:
            values = entry.api_keys or []
            base = f"{path}.api_keys"
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

    def stage_prices(self, path: str, entry: ProviderConfig, obj: Provider, item: Staged) -> None:
        """The provider's catalog as the entry says: its `models` and `prices` keys, each a row.

        What the configuration made (source "config") it also unmakes: such a row the entry
        no longer names is deleted, and one named in `models` without prices has unknown
        ones. A row of another source (discovered, added by hand) stays, with its prices
        unknown unless the entry gives them; what discovery found out (context window,
        capabilities) it keeps, unless the entry names that key.
        """
        catalog = {m.name: m for m in obj.catalog.all()} if obj.pk else {}
        named = dict.fromkeys([*entry.models, *entry.prices])
        rows: list[ProviderModel] = []
        for model_name in named:
            row = catalog.get(model_name) or ProviderModel(
                provider=obj, name=model_name, source=ProviderModel.Source.CONFIG
            )
            if model_name in entry.prices:
                price = entry.prices[model_name]
                keys = PRICE_KEYS
                if row.source != row.Source.CONFIG:  # the facts discovery found stay unless named
                    keys = tuple(k for k in PRICE_KEYS if k in MONEY_KEYS or k.path[0] in price.model_fields_set)
                changes = self.assign(row, price, keys)
            else:
                # no prices given: every key at its default (unknown), or only the prices of a
                # row the configuration did not make
                keys = PRICE_KEYS if row.source == row.Source.CONFIG else MONEY_KEYS
                changes = self.assign(row, PriceConfig(), keys)
            self.validate(f"{path}.prices.{model_name}", row, PRICE_KEYS, exclude=["provider"])
            if row.pk is None or changes:
                if changes:
                    item.changes[f"prices.{model_name}"] = _before_after(changes, created=row.pk is None)
                rows.append(row)
        gone: list[ProviderModel] = []
        for row in catalog.values():
            if row.name in named:
                continue
            if row.source == row.Source.CONFIG:
                item.changes[f"prices.{row.name}"] = [price_spec(row), None]
                gone.append(row)
            elif changes := self.assign(row, PriceConfig(), MONEY_KEYS):
                item.changes[f"prices.{row.name}"] = _before_after(changes, created=False)
                rows.append(row)

        def save_rows(provider: Provider = obj, rows: list[ProviderModel] = rows) -> None:
            for row in rows:
                row.provider = provider
                row.save()
            ProviderModel.objects.filter(pk__in=[row.pk for row in gone]).delete()

        if rows or gone:
            item.after_save.append(save_rows)

    def stage_routes(self, provider_names: set[str]) -> dict[str, Staged]:
        staged: dict[str, Staged] = {}
        existing = {r.name: r for r in Route.objects.with_targets()}
        for path, entry in self.named_entries("routes", "route", RouteConfig):
            obj = existing.get(entry.name) or Route(name=entry.name)
            item = Staged(obj, obj.pk is None, self.assign(obj, entry, ROUTE_KEYS))
            self.validate(path, obj, ROUTE_KEYS)
            targets = self.stage_targets(path, entry.targets, provider_names)
            before = [[t.provider.name, t.model, t.weight] for t in obj.targets.all()] if obj.pk else []
            if targets is not None and targets != before:
                item.changes["targets"] = [before, targets]
                item.after_save.append(_target_saver(obj, targets))
            staged[entry.name] = item
        return staged

    def stage_targets(self, path: str, targets: list[TargetConfig], provider_names: set[str]) -> list[list[Any]] | None:
        """The chain as [provider, model, weight] lists; None after an error."""
        errors = len(self.errors)
        chain = []
        for i, target in enumerate(targets):
            where = f"{path}.targets[{i}]"
            if target.provider not in provider_names:
                self.error(f"{where}.provider", f"unknown provider {target.provider!r}")
            row = RouteTarget()
            self.assign(row, target, TARGET_KEYS)
            self.validate(where, row, TARGET_KEYS, exclude=["route", "provider"])
            chain.append([target.provider, row.model, row.weight])
        return chain if len(self.errors) == errors else None

    # -- run -------------------------------------------------------------------------------

    def run(self) -> Summary:
        allowed = top_level()
        for key in self.doc:
            if key not in allowed:
                self.error(key, f"unknown section (allowed: {', '.join(allowed)})")
        providers = self.stage_providers()
        existing_names = set(Provider.objects.values_list("name", flat=True))
        known = self.names["providers"] | (set() if self.prune else existing_names)
        routes = self.stage_routes(known)
        extra = [(section, section.stage(self, known)) for section in sections()]
        if self.errors:
            raise ConfigError(self.errors)
        summary = Summary()
        with transaction.atomic():
            for kind, staged in (
                ("provider", providers),
                ("route", routes),
                *((section.kind, items) for section, items in extra),
            ):
                for name, item in staged.items():
                    if not item.created and not item.changes:
                        summary.unchanged += 1
                        continue
                    item.obj.save()
                    for step in item.after_save:
                        step()
                    action = "create" if item.created else "update"
                    (summary.created if item.created else summary.updated).append(f"{kind} {name}")
                    AuditLog.objects.create(
                        actor=self.actor, action=action, object_type=kind, object_name=name, changes=item.changes
                    )
            if self.prune:
                # Providers go last: the other sections' rows refer to them.
                pruned: list[tuple[str, type[Any], dict[str, Staged]]] = [
                    ("route", Route, routes),
                    *((section.kind, section.model, items) for section, items in extra),
                    ("provider", Provider, providers),
                ]
                for kind, model, staged in pruned:
                    for obj in model.objects.exclude(name__in=list(staged)):
                        obj.delete()
                        summary.deleted.append(f"{kind} {obj.name}")
                        AuditLog.objects.create(
                            actor=self.actor, action="delete", object_type=kind, object_name=obj.name
                        )
        return summary


def _target_saver(route: Route, targets: list[list[Any]]) -> Callable[[], None]:
    def save_targets() -> None:
        route.targets.all().delete()
        by_name = {p.name: p for p in Provider.objects.filter(name__in=[t[0] for t in targets])}
        RouteTarget.objects.bulk_create(
            RouteTarget(route=route, provider=by_name[p], model=m, weight=w, position=i)
            for i, (p, m, w) in enumerate(targets)
        )

    return save_targets


def _before_after(changes: dict[str, list[Any]], *, created: bool) -> list[Any]:
    """{key: [old, new]} as [{key: old}, {key: new}] (None before: a new row)."""
    before = None if created else {key: old for key, (old, _) in changes.items()}
    return [before, {key: new for key, (_, new) in changes.items()}]


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
