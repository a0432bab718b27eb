"""A fake of OpenRouter: OpenAI's chat API under `/api/v1`, and OpenRouter's own model list.

`GET /api/v1/models` answers `{"data": [...]}` with OpenRouter's item shape: `id`,
`canonical_slug`, `name`, `created`, `description`, `context_length`, `architecture`,
`top_provider`, `per_request_limits`, `supported_parameters` and `pricing`, whose figures
are strings in USD per token (`prompt`, `completion`), per input image (`image`), per
request (`request`), per web search and per reasoning token; `"0"` for a free model and
`"-1"` for a router whose price depends on the model it picks.

Everything else (chat, auth, faults) is FakeOpenAI's, also served under `/api/v1`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from .openai import FakeOpenAI

__all__ = ["FakeOpenRouter", "pricing"]


def pricing(prompt: str, completion: str, *, image: str = "0", request: str = "0") -> dict[str, str]:
    """An OpenRouter `pricing` object (USD per token, as strings)."""
    return {
        "prompt": prompt,
        "completion": completion,
        "request": request,
        "image": image,
        "web_search": "0",
        "internal_reasoning": "0",
    }


class FakeOpenRouter(FakeOpenAI):
    kind = "openrouter"

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, prices: Mapping[str, Mapping[str, str]], **kw: Any
    ) -> None:
        """`prices`: model id → its `pricing` object; the models served are these."""
        super().__init__(host, port, models=list(prices), **kw)
        self.prices = {name: dict(p) for name, p in prices.items()}

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/api/v1/chat/completions", self.chat_completions)
        app.router.add_get("/api/v1/models", self.list_models)
        super().add_routes(app)

    def _model_item(self, name: str) -> dict[str, Any]:
        return {
            "id": name,
            "canonical_slug": name,
            "name": name.split("/")[-1],
            "created": 1718841600,
            "description": f"{name} through OpenRouter",
            "context_length": 131072,
            "architecture": {
                "modality": "text->text",
                "input_modalities": ["text"],
                "output_modalities": ["text"],
                "tokenizer": "Other",
                "instruct_type": None,
            },
            "pricing": self.prices.get(name, pricing("0", "0")),
            "top_provider": {"context_length": 131072, "max_completion_tokens": 16384, "is_moderated": False},
            "per_request_limits": None,
            "supported_parameters": ["max_tokens", "temperature", "tools"],
        }

    async def list_models(self, request: web.Request) -> web.Response:
        denied = self._auth(request)
        if denied is not None:
            return denied
        return web.json_response({"data": [self._model_item(m) for m in self.models or []]})
