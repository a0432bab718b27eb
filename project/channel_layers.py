"""The channel layer configuration (the console's live pushes, the events stream).

With REDIS_URL it is channels_redis. Its receive is a blocking pop that Redis answers after
`brpop_timeout` (5 s) when nothing came; redis-py (since 6) reads every answer with a
`socket_timeout` of 5 s by default, so an idle receive raced its own read timeout and failed
with `TimeoutError` every few seconds: a console websocket or an events stream that waited for
its next push was ended by the error instead. The read timeout here stays well above the pop's,
so only a Redis that is truly gone times out.
"""

from __future__ import annotations

from typing import Any

# A receive waits up to channels_redis' brpop_timeout (5 s) for Redis' answer; a read timeout
# above it leaves room for a busy machine, and still detects a Redis that stopped answering.
SOCKET_TIMEOUT_S = 20.0
CONNECT_TIMEOUT_S = 5.0


def redis_channel_layer(url: str) -> dict[str, Any]:
    return {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            "hosts": [{"address": url, "socket_timeout": SOCKET_TIMEOUT_S, "socket_connect_timeout": CONNECT_TIMEOUT_S}]
        },
    }
