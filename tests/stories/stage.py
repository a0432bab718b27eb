"""A story's stage: the real server, started as `make run` starts it, with the story's example
file loaded by `import_config` and every provider pointed at a fake.

What `make run` does, and what a stage does instead:
- `migrate` and `ensure_admin`: once per session into a template database (`Template`), which
  every story copies, with the users a story signs in as and one API key;
- `demo`: skipped (`NO_DEMO=1`), as an operator with their own providers would;
- `serve`: the same command, under uvicorn (the default) or daphne, with its embedded monitor:
  one process on its own SQLite database with in-process state, as `make run` starts it, also
  when the suite runs with REDIS_URL (CI's second pass): a REDIS_URL in the environment would
  turn the embedded monitor off and share breaker state between the stories' servers through
  one Redis database that the suite empties before every test. The scale-out path has its own
  tests (tests/scaleout).

Loading the story: the example file is read, each provider's `base_url` is pointed at its fake
(a test never reaches the internet) and the few settings a story names are made test-sized
(`tweak`: a shorter backoff, a shorter probe interval); the result is written next to the
database and imported with `manage.py import_config` before the server starts, so the monitor
never probes a real address. Names, kinds, models, prices, routes, strategies and chains are the
file's. The `env:` references of the file are set in the server's environment: keys, and for a
`base_url: env:NAME` the fake's URL, which the file keeps as a reference.

Everything a story asserts is read from outside: the HTTP APIs, the events stream, the console's
websocket, the CLI, and what the fakes received.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import yaml
from cryptography.fernet import Fernet

from tests.e2e import server as srv
from tests.fakes.base import FakeServer

from .listeners import ConsoleSocket, EventStream

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
ENV_REFERENCE = re.compile(r"env:([A-Z0-9_]+)")
PASSWORD = "story-pass-123"
# A bound on waiting for something the server does on its own (a probe, a configuration poll,
# an analytics flush): generous, so that a busy machine cannot fail a story by being slow.
PATIENCE_S = 60.0
# One user per console level (health/access.py): staff sees, an `operators` member acts, the
# superuser (`ensure_admin`'s) configures.
USERS = """
from django.contrib.auth.models import Group, User
operators, _ = Group.objects.get_or_create(name="operators")
User.objects.create_user("viewer", password="{pw}", is_staff=True)
User.objects.create_user("oper", password="{pw}", is_staff=True).groups.add(operators)
"""

Tweak = Callable[[dict[str, Any]], None]


def example_path(story: str) -> Path:
    return EXAMPLES / f"{story}.yaml"


def env_names(story: str) -> set[str]:
    """The environment variables the example file names."""
    return set(ENV_REFERENCE.findall(example_path(story).read_text()))


def provider_entry(config: dict[str, Any], name: str) -> dict[str, Any]:
    return next(p for p in config["providers"] if p["name"] == name)


def route_entry(config: dict[str, Any], name: str) -> dict[str, Any]:
    return next(r for r in config["routes"] if r["name"] == name)


@dataclass
class Template:
    """A migrated database with the admin, the other users and an API key, copied by every story."""

    env: dict[str, str]
    database: Path
    key: str

    @classmethod
    def make(cls, tmp: Path) -> Template:
        env = srv.server_env(tmp)
        env.update(
            {
                "SECRET_KEY": "stories-" + Fernet.generate_key().decode(),
                "ENCRYPTION_KEYS": Fernet.generate_key().decode(),
                "ADMIN_PASSWORD": PASSWORD,
                # The events stream says it is alive every second: a listener stopping waits no longer.
                "EVENTS_KEEPALIVE_S": "1",
                # `make run`'s single process (see above), whatever the suite's environment holds.
                "REDIS_URL": "",
                "SHARED_STATE": "false",
                "MONITOR_EMBEDDED": "true",
            }
        )
        database = tmp / "template.sqlite3"
        env["DATABASE_URL"] = f"sqlite:///{database}"
        server = srv.ServerProcess(url="", env=env)
        server.manage("migrate", "--noinput")
        server.manage("ensure_admin")
        server.manage("shell", "-c", USERS.format(pw=PASSWORD))
        created = server.manage("create_api_key", "stories", "--scopes", "gateway,read,admin")
        return cls(env=env, database=database, key=created.stdout.strip().splitlines()[-1])


@dataclass
class Stage:
    """The running server of one story, its fakes and the clients that talk to it."""

    story: str
    server: srv.ServerProcess
    key: str
    fakes: dict[str, FakeServer]
    config: dict[str, Any]  # what was imported
    tmp: Path
    closers: list[Callable[[], None]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url

    # -- clients ----------------------------------------------------------------------------

    def headers(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.key}"}

    def http(self, key: str | None = None) -> httpx.Client:
        client = httpx.Client(base_url=self.url, headers=self.headers(key), timeout=PATIENCE_S)
        self.closers.append(client.close)
        return client

    def openai(self) -> openai.OpenAI:
        """The official SDK, unchanged but for where it points; its own retries off (one layer decides)."""
        client = openai.OpenAI(base_url=self.url + "/v1", api_key=self.key, max_retries=0, timeout=PATIENCE_S)
        self.closers.append(client.close)
        return client

    def anthropic(self) -> anthropic.Anthropic:
        client = anthropic.Anthropic(base_url=self.url, api_key=self.key, max_retries=0, timeout=PATIENCE_S)
        self.closers.append(client.close)
        return client

    def manage(self, *args: str, env: Mapping[str, str] | None = None) -> str:
        """A management command against this story's database (as an operator runs it beside the server)."""
        if env:
            process = srv.ServerProcess(url=self.url, env={**self.server.env, **env})
            return process.manage(*args).stdout
        return self.server.manage(*args).stdout

    def console(self, username: str) -> httpx.Client:
        """The console signed in as `username` (the login form, as a browser fills it in); posts
        carry the CSRF token as the console's pages send it (a header)."""
        client = httpx.Client(base_url=self.url, timeout=PATIENCE_S)
        self.closers.append(client.close)
        page = client.get("/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        assert token, page.text[:500]
        signed_in = client.post(
            "/login/",
            data={"username": username, "password": PASSWORD, "csrfmiddlewaretoken": token.group(1), "next": "/"},
            headers={"Referer": self.url + "/login/"},
        )
        assert signed_in.status_code == 302, signed_in.text[:500]
        client.headers["X-CSRFToken"] = client.cookies["csrftoken"]
        client.headers["Referer"] = self.url + "/"
        return client

    @contextmanager
    def events(self, last_event_id: str | None = None) -> Iterator[EventStream]:
        """`GET /api/events/stream`, listened to from the moment it has subscribed."""
        stream = EventStream(self.url, self.key, last_event_id=last_event_id)
        stream.open()
        try:
            yield stream
        finally:
            stream.close()

    @contextmanager
    def socket(self, username: str = "viewer", query: str = "") -> Iterator[ConsoleSocket]:
        """The console's websocket `/ws/health/` (`query`: "?provider=<name>" for a provider's
        page) with `username`'s session, from the site's own origin."""
        session = self.console(username).cookies["sessionid"]
        socket = ConsoleSocket(self.url, session, query=query)
        try:
            yield socket
        finally:
            socket.close()

    # -- reading the server from outside ------------------------------------------------------

    def get(self, path: str) -> Any:
        answer = httpx.get(self.url + path, headers=self.headers(), timeout=PATIENCE_S)
        assert answer.status_code == 200, (path, answer.status_code, answer.text)
        return answer.json()

    def post(self, path: str, json: Any = None, key: str | None = None) -> httpx.Response:
        return httpx.post(self.url + path, headers=self.headers(key), json=json, timeout=PATIENCE_S)

    def execute(self, **payload: Any) -> httpx.Response:
        return self.post("/api/execute", json=payload)

    def logged(self, request_id: str) -> dict[str, Any]:
        """`GET /api/requests/<id>`, once the request log's batch with it is written."""

        def read() -> Any:
            answer = httpx.get(f"{self.url}/api/requests/{request_id}", headers=self.headers(), timeout=PATIENCE_S)
            assert answer.status_code in (200, 404), answer.text
            return answer.json() if answer.status_code == 200 else None

        return self.until(read, f"request {request_id} in the log")

    def health(self) -> dict[str, dict[str, Any]]:
        return {h["name"]: h for h in self.get("/api/health")["providers"]}

    def analytics(self, name: str | None = None, window: str = "1h") -> dict[str, Any]:
        return self.get(f"/api/analytics/{name}?window={window}" if name else f"/api/analytics?window={window}")

    def until(self, read: Callable[[], Any], what: str, seconds: float = PATIENCE_S) -> Any:
        """Read `read()` until it is truthy (a bounded poll, for what the server only shows when
        its own loop has run: the analytics writer, the monitor's evaluation); returns it."""
        deadline = time.monotonic() + seconds
        while True:
            value = read()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"not within {seconds} s: {what}\n{self.server.log()[-3000:]}")
            time.sleep(0.1)

    # -- between tests ------------------------------------------------------------------------

    def calm(self) -> None:
        """Put the fakes and the server back as the story began: no faults, breakers closed,
        cooldowns and statistics cleared, every provider enabled (all through the API)."""
        for fake in self.fakes.values():
            fake.clear_faults()
        with httpx.Client(base_url=self.url, headers=self.headers(), timeout=PATIENCE_S) as client:
            for provider in self.config["providers"]:
                name = provider["name"]
                for path in (
                    f"/api/providers/{name}/enable",
                    f"/api/breakers/{name}/reset",
                    f"/api/health/{name}/reset",
                ):
                    answer = client.post(path)
                    assert answer.status_code == 200, (path, answer.text)

    def stop(self) -> None:
        for close in reversed(self.closers):
            close()
        self.server.stop()


def story_config(
    story: str, fakes: Mapping[str, FakeServer], *, paths: Mapping[str, str], tweak: Tweak | None
) -> dict[str, Any]:
    """The example file with its providers pointed at the fakes (`paths`: a suffix per provider,
    `/v1` for an OpenAI-style base URL) and test-sized by `tweak`. A `base_url: env:NAME` is
    left as the file has it: the story gives NAME its fake's URL, as an operator exports it."""
    config = yaml.safe_load(example_path(story).read_text())
    names = {p["name"] for p in config["providers"]}
    assert names == set(fakes), f"point every provider of the file at a fake: {sorted(names ^ set(fakes))}"
    for provider in config["providers"]:
        if ENV_REFERENCE.fullmatch(str(provider.get("base_url", ""))):
            continue  # `base_url: env:NAME` stays: the story sets NAME to its fake's URL
        provider["base_url"] = fakes[provider["name"]].url + paths.get(provider["name"], "")
    if tweak is not None:
        tweak(config)
    return config


def open_stage(
    template: Template,
    tmp: Path,
    story: str,
    fakes: dict[str, FakeServer],
    *,
    env: Mapping[str, str],
    paths: Mapping[str, str] | None = None,
    tweak: Tweak | None = None,
    server_kind: str | None = None,
) -> Stage:
    """Copy the template database, import the story, start `manage.py serve` (`server_kind`
    None: the project's default, uvicorn; or "daphne") with its embedded monitor."""
    assert set(env) == env_names(story), "give every env: reference of the file a value"
    database = tmp / "db.sqlite3"
    shutil.copyfile(template.database, database)
    server = srv.ServerProcess(url="", env={**template.env, **env, "DATABASE_URL": f"sqlite:///{database}"})
    config = story_config(story, fakes, paths=paths or {}, tweak=tweak)
    document = tmp / f"{story}.yaml"
    document.write_text(yaml.safe_dump(config, sort_keys=False))
    imported = server.manage("import_config", str(document)).stdout
    assert "deleted 0" in imported, imported
    srv.start(server, tmp, server_kind=server_kind)
    return Stage(story=story, server=server, key=template.key, fakes=fakes, config=config, tmp=tmp)
