"""Security defaults: CSP and friends on every console page; login throttling."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_console_pages_carry_a_strict_script_policy_and_framing_is_refused(admin_client_logged):
    response = admin_client_logged.get("/")
    assert response.status_code == 200
    policy = response["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";") if part.strip())
    assert directives["script-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'" and directives["object-src"] == "'none'"
    assert "unsafe-eval" not in policy and "unsafe-inline" not in directives["script-src"]
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"


def test_the_login_page_has_the_policy_too(client):
    assert "script-src 'self'" in client.get("/login/")["Content-Security-Policy"]


def test_repeated_failed_logins_lock_the_username_out_even_with_the_right_password(client, django_user_model):
    django_user_model.objects.create_user("ops", password="right-password-123", is_staff=True)
    for _ in range(5):
        response = client.post("/login/", {"username": "ops", "password": "wrong"})
        assert response.status_code in (200, 429)
    locked = client.post("/login/", {"username": "ops", "password": "right-password-123"})
    assert locked.status_code == 429
    assert "Too many failed sign-ins" in locked.content.decode()
    assert "_auth_user_id" not in client.session


def test_a_successful_login_resets_the_count(client, django_user_model):
    django_user_model.objects.create_user("ops", password="right-password-123", is_staff=True)
    for _ in range(3):
        client.post("/login/", {"username": "ops", "password": "wrong"})
    assert client.post("/login/", {"username": "ops", "password": "right-password-123"}).status_code == 302
    client.logout()
    for _ in range(3):
        client.post("/login/", {"username": "ops", "password": "wrong"})
    assert client.post("/login/", {"username": "ops", "password": "right-password-123"}).status_code == 302


def test_cookies_are_http_only_and_same_site():
    from django.conf import settings

    assert settings.SESSION_COOKIE_HTTPONLY and settings.SESSION_COOKIE_SAMESITE == "Lax"
    assert settings.CSRF_COOKIE_SAMESITE == "Lax"
