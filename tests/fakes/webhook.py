"""A fake alert receiver: a generic JSON webhook or a Slack incoming webhook.

Any POST is recorded and answered 200 with Slack's body, the text `ok`. Errors come from the
common fault frame (`server.fault(status=404)`, `hang=True`, ...); an error body is Slack's
plain-text kind (`no_service`, `channel_is_archived`, ...) rather than a provider's JSON.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .base import FakeServer, Fault

# How long a sender should wait for this receiver's answer in tests. A slower answer makes the
# alerter retry, and the receiver then records the same alert twice; on a busy CI machine an
# answer can take seconds. Tests of the timeout itself set their own, with `fault(hang=True)`.
PATIENCE_S = 30.0

SLACK_ERRORS = {
    400: "invalid_payload",
    403: "action_prohibited",
    404: "no_service",
    410: "channel_is_archived",
    500: "rollup_error",
}


class FakeWebhook(FakeServer):
    kind = "webhook"

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/{tail:.*}", self._receive)

    def error_body(self, status: int, fault: Fault) -> dict[str, Any]:
        return {"error": SLACK_ERRORS.get(status, f"fake webhook error {status}")}

    async def _receive(self, request: web.Request) -> web.Response:
        return web.Response(text="ok", content_type="text/plain")

    def payloads(self, path: str | None = None) -> list[Any]:
        """The JSON bodies received (at `path`, or anywhere), oldest first."""
        with self._lock:
            rows = [r for r in self.requests if r.method == "POST" and (path is None or r.path == path)]
        return [r.json() for r in rows]

    def events(self) -> list[str]:
        """The `event` field of each generic webhook body received ("alert", "reminder", ...)."""
        return [p.get("event") for p in self.payloads() if isinstance(p, dict)]
