"""A request's console page shows its kept request and response bodies (JSON pretty-printed,
always escaped), and says in one line that bodies are not kept, and which setting keeps them,
when REQUEST_BODY_RETENTION_DAYS is 0."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from asgiref.sync import sync_to_async

from analytics.models import RequestBody, RequestLog

pytestmark = pytest.mark.django_db(transaction=True)

AT = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)


@sync_to_async
def logged(request_id: str, *, request_body: str | None = None, response_body: str | None = None) -> None:
    RequestLog.objects.create(
        at=AT,
        request_id=request_id,
        route="chat",
        capability="chat",
        provider="sim-a",
        model="sim-small",
        outcome="success",
        status=200,
        latency_ms=12.0,
        attempts=[],
    )
    if request_body is not None or response_body is not None:
        RequestBody.objects.create(
            at=AT, request_id=request_id, request_body=request_body or "", response_body=response_body or ""
        )


def section(html: str, id_: str) -> str:
    return html.split(f'id="{id_}"')[1].split("</section>")[0]


async def test_kept_bodies_are_shown_json_pretty_printed_and_html_escaped(simulated, login, users, settings):
    settings.REQUEST_BODY_RETENTION_DAYS = 7
    await logged(
        "with-bodies",
        request_body='{"model":"chat","messages":[{"role":"user","content":"<script>alert(1)</script>"}]}',
        response_body="<b>not json</b> & more",
    )
    client = await login(users["staff"])
    response = await client.get("/requests/with-bodies")
    html = response.content.decode()
    assert response.status_code == 200

    asked = section(html, "request-body")
    assert "<h2" in asked and "Request body" in asked
    assert '<pre class="body-text" data-field="request-body">{\n  &quot;model&quot;: &quot;chat&quot;,' in asked
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in asked
    assert "<script>alert(1)" not in html
    answered = section(html, "response-body")
    assert "Response body" in answered
    assert "&lt;b&gt;not json&lt;/b&gt; &amp; more</pre>" in answered
    assert 'id="request-bodies"' not in html


async def test_with_bodies_off_the_page_says_which_setting_keeps_them(simulated, login, users):
    await logged("no-bodies", request_body='{"a": 1}', response_body="kept before it was turned off")
    client = await login(users["staff"])
    html = (await client.get("/requests/no-bodies")).content.decode()

    line = section(html, "request-bodies")
    assert "Bodies are not kept: set <code>REQUEST_BODY_RETENTION_DAYS</code>" in line
    assert 'id="request-body"' not in html and "kept before it was turned off" not in html


async def test_a_request_without_kept_bodies_says_so(simulated, login, users, settings):
    settings.REQUEST_BODY_RETENTION_DAYS = 7
    await logged("before-bodies")
    client = await login(users["staff"])
    html = (await client.get("/requests/before-bodies")).content.decode()

    assert "No bodies were kept for this request" in section(html, "request-bodies")
    assert 'id="request-body"' not in html


async def test_an_empty_answer_is_said_to_be_empty(simulated, login, users, settings):
    settings.REQUEST_BODY_RETENTION_DAYS = 7
    await logged("left", request_body='{"a": 1}', response_body="")
    client = await login(users["staff"])
    html = (await client.get("/requests/left")).content.decode()

    assert "Empty: nothing was sent back" in section(html, "response-body")
    assert "&quot;a&quot;: 1" in section(html, "request-body")
