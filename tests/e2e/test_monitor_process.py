"""`manage.py monitor` as its own process: it probes, and SIGTERM stops it cleanly."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from tests.e2e import server as srv
from tests.fakes.openai import API_KEY, FakeOpenAI

pytestmark = pytest.mark.e2e


def test_sigterm_stops_the_monitor_cleanly_and_releases_its_lease(tmp_path):
    with FakeOpenAI() as fake:
        server = srv.prepare(tmp_path)
        config = tmp_path / "c.yaml"
        config.write_text(
            f"providers:\n  - {{name: p1, kind: openai, base_url: '{fake.url}/v1', api_key: {API_KEY},"
            " models: [gpt-4o-mini], health_check: {interval_s: 1, timeout_s: 1}}\n"
        )
        server.manage("import_config", str(config))
        log = (tmp_path / "monitor.log").open("w")
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "monitor"], cwd=srv.ROOT, env=server.env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and len(fake.requests_to("/v1/models")) < 2:
                time.sleep(0.2)
            assert len(fake.requests_to("/v1/models")) >= 2  # it probes on its interval
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(15) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
        output = (tmp_path / "monitor.log").read_text()
        assert "monitor stopped cleanly" in output
        # its updates reach no console through an in-process channel layer: warned, unless Redis
        assert ("health.W001" in output) is (not server.env.get("REDIS_URL"))
        holder = server.manage(
            "shell", "-c", "from health.lease import Lease;print(Lease('monitor','x',10).current_holder())"
        ).stdout
        assert holder.strip().splitlines()[-1] == "None"
