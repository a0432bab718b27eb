from __future__ import annotations

import hashlib
import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from providers.models import ApiKey, AuditLog

pytestmark = pytest.mark.django_db


def test_create_api_key_prints_the_key_alone_on_the_last_line_and_stores_only_its_hash():
    out, err = io.StringIO(), io.StringIO()
    call_command("create_api_key", "app1", "--scopes", "gateway,read", stdout=out, stderr=err)
    key = out.getvalue().strip().splitlines()[-1]
    assert key.startswith("gw_") and len(key) > 40
    row = ApiKey.objects.get(name="app1")
    assert row.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert row.scopes == ["gateway", "read"]
    assert key.startswith(row.prefix)
    stored = " ".join(str(v) for v in ApiKey.objects.filter(pk=row.pk).values().get().values())
    assert key not in stored
    assert key.split("_", 2)[2] not in stored
    assert AuditLog.objects.filter(object_type="api_key", object_name="app1", action="create").exists()


def test_an_unknown_scope_is_refused_with_the_field_named():
    with pytest.raises(CommandError, match="scopes: must be a non-empty list of: gateway, read, admin"):
        call_command("create_api_key", "bad", "--scopes", "gateway,superpowers", stdout=io.StringIO())
    assert not ApiKey.objects.filter(name="bad").exists()


def test_a_second_key_with_the_same_name_is_refused():
    call_command("create_api_key", "dup", stdout=io.StringIO(), stderr=io.StringIO())
    with pytest.raises(CommandError, match="exists already"):
        call_command("create_api_key", "dup", stdout=io.StringIO(), stderr=io.StringIO())


def test_admin_scope_implies_read_but_not_gateway():
    row, _ = ApiKey.issue("ops", ["admin"])
    assert row.has_scope("admin") and row.has_scope("read")
    assert not row.has_scope("gateway")


def test_two_issued_keys_differ_and_hash_differently():
    a, key_a = ApiKey.issue("a", ["gateway"])
    b, key_b = ApiKey.issue("b", ["gateway"])
    assert key_a != key_b and a.key_hash != b.key_hash and a.prefix != b.prefix
