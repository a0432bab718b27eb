"""Removing prices and models through configuration (`import_config --prune`, `PUT /api/config`):
a price entry the document drops is deleted, a price it drops from an entry becomes unknown
(not 0), and a model it stops naming leaves `/v1/models` and can no longer be called by name."""

from __future__ import annotations

import io
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from asgiref.sync import sync_to_async
from django.core.management import call_command

from providers.models import ProviderModel
from tests.conftest import auth

IN, OUT = "input_price_per_mtok", "output_price_per_mtok"


def document(models: list[str], prices: dict) -> dict:
    return {
        "providers": [{"name": "sim", "kind": "simulated", "models": models, "prices": prices}],
        "routes": [],
    }


FIRST = document(
    ["m1", "m2"],
    {"m1": {"input_per_mtok": 1, "output_per_mtok": 2}, "m2": {"input_per_mtok": 3}, "p": {"input_per_mtok": 0}},
)


def catalog() -> dict[str, tuple[Decimal | None, Decimal | None]]:
    return {m.name: (m.input_price_per_mtok, m.output_price_per_mtok) for m in ProviderModel.objects.all()}


def run_import(tmp_path: Path, doc: dict, *extra: str) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(doc))
    out = io.StringIO()
    call_command("import_config", str(path), *extra, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_import_config_prune_deletes_the_dropped_model_and_price_entry_and_unknowns_a_dropped_price(tmp_path):
    run_import(tmp_path, FIRST, "--prune")
    assert catalog() == {"m1": (Decimal(1), Decimal(2)), "m2": (Decimal(3), None), "p": (Decimal(0), None)}

    run_import(tmp_path, document(["m1"], {"m1": {"input_per_mtok": 1}}), "--prune")

    assert catalog() == {"m1": (Decimal(1), None)}  # m2 (a model) and p (a price entry) gone
    assert not ProviderModel.objects.get(name="m1").is_free  # an unknown price is not a free one


@pytest.mark.django_db
def test_an_explicit_null_price_is_unknown_and_a_zero_is_free(tmp_path):
    run_import(tmp_path, document([], {"a": {"input_per_mtok": None, "output_per_mtok": 0}}), "--prune")
    row = ProviderModel.objects.get(name="a")
    assert (row.input_price_per_mtok, row.output_price_per_mtok) == (None, Decimal(0))
    assert row.price_known and row.is_free


@pytest.mark.django_db(transaction=True)
async def test_put_config_removes_a_model_from_the_list_and_from_routing(gateway, key):
    put = await gateway.put("/api/config", headers=auth(key), json=FIRST)
    assert put.status_code == 200
    listed = {m["id"] for m in (await gateway.get("/v1/models", headers=auth(key))).json()["data"]}
    assert {"sim/m1", "sim/m2", "sim/p"} <= listed
    chat = {"model": "m2", "messages": [{"role": "user", "content": "hi"}]}
    assert (await gateway.post("/v1/chat/completions", json=chat, headers=auth(key))).status_code == 200

    put = await gateway.put("/api/config", headers=auth(key), json=document(["m1"], {}))
    assert put.status_code == 200 and put.json()["updated"] == ["provider sim"]

    listed = {m["id"] for m in (await gateway.get("/v1/models", headers=auth(key))).json()["data"]}
    assert "sim/m1" in listed and "sim/m2" not in listed and "sim/p" not in listed
    gone = await gateway.post("/v1/chat/completions", json=chat, headers=auth(key))
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "model_not_found"
    assert await sync_to_async(catalog)() == {"m1": (None, None)}  # named without prices: unknown
    models = (await gateway.get("/api/providers/sim/models", headers=auth(key))).json()["models"]
    assert [(m["name"], m[IN], m[OUT], m["price_known"], m["free"]) for m in models] == [
        ("m1", None, None, False, False)
    ]
