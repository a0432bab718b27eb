"""A fake of Together AI: OpenAI's API under `/v1`, and Together's own model list.

`GET /v1/models` answers a top-level JSON array (not `{"data": ...}`) of Together's items:
`id`, `object`, `created`, `type` (chat, language, image, embedding, ...), `running`,
`display_name`, `organization`, `link`, `license`, `context_length`, `config` and `pricing`,
whose figures are numbers in USD per million tokens (`input`, `output`), plus `hourly`
(dedicated endpoints), `base` and `finetune`; a model not sold per token has them all 0.

Everything else (chat, auth, faults) is FakeOpenAI's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from .openai import FakeOpenAI

__all__ = ["FakeTogether", "pricing"]


def pricing(
    input: float, output: float, *, hourly: float = 0, base: float = 0, finetune: float = 0
) -> dict[str, float]:
    """A Together `pricing` object (USD per million tokens)."""
    return {"hourly": hourly, "input": input, "output": output, "base": base, "finetune": finetune}


class FakeTogether(FakeOpenAI):
    kind = "together"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        prices: Mapping[str, Mapping[str, float]],
        types: Mapping[str, str] | None = None,
        **kw: Any,
    ) -> None:
        """`prices`: model id → its `pricing` object; `types`: model id → its `type` (chat)."""
        super().__init__(host, port, models=list(prices), **kw)
        self.prices = {name: dict(p) for name, p in prices.items()}
        self.types = dict(types or {})

    def _model_item(self, name: str) -> dict[str, Any]:
        organization, _, short = name.partition("/")
        return {
            "id": name,
            "object": "model",
            "created": 1733443200,
            "type": self.types.get(name, "chat"),
            "running": False,
            "display_name": short or name,
            "organization": organization,
            "link": f"https://huggingface.co/{name}",
            "license": "other",
            "context_length": 131072,
            "config": {"chat_template": None, "stop": ["<|eot_id|>"], "bos_token": None, "eos_token": None},
            "pricing": self.prices.get(name, pricing(0, 0)),
        }

    async def list_models(self, request: web.Request) -> web.Response:
        denied = self._auth(request)
        if denied is not None:
            return denied
        return web.json_response([self._model_item(m) for m in self.models or []])
