"""The engine is pure Python + httpx: importing it loads no Django."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_engine_loads_no_django_module():
    code = (
        "import sys, providers.engine\n"
        "loaded = sorted(m for m in sys.modules if m == 'django' or m.startswith('django.'))\n"
        "print(len(sys.modules)); print(loaded)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    count, loaded = result.stdout.splitlines()
    assert int(count) > 50  # the import really happened
    assert loaded == "[]"


def test_the_public_api_is_exactly_what_all_names():
    import providers.engine as engine

    assert all(hasattr(engine, name) for name in engine.__all__)
    assert {"Engine", "RoutePolicy", "TargetSpec", "ChainResult", "StateStore", "RedisStateStore"} <= set(
        engine.__all__
    )
    # The building blocks stay behind the package: the surface is what the project uses.
    assert not {"SlidingWindow", "Cooldowns", "CircuitBreaker", "order_targets", "watch_sends"} & set(engine.__all__)
    assert len(engine.__all__) <= 45
