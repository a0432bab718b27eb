"""A fake Ollama server: the native `/api/*` wire format and the OpenAI-compatible `/v1/*`
endpoints real Ollama serves beside it.

Native answers are Ollama's own shapes: NDJSON streams (`{...}\\n` per line, content type
`application/x-ndjson`), errors as `{"error": "..."}` with real statuses (404 for an unknown
model, 400 for a bad request, 500 otherwise), an error that happens after a stream started
as one last `{"error": ...}` line in a 200 stream. `/v1/*` errors use OpenAI's shape, as real
Ollama's compatibility layer does. Real Ollama has no authentication; pass `api_key` to put
the fake behind a Bearer check, as a reverse proxy would.

Models live in `self.models`; `/api/pull` streams realistic progress for any name in
`self.registry` and adds the model to `/api/tags` when it reports success.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import json
import math
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from .base import FakeServer, Fault, sse

_path: contextvars.ContextVar[str] = contextvars.ContextVar("fake_ollama_path", default="")


@dataclass
class FakeModel:
    name: str
    family: str
    families: list[str]
    parameter_size: str
    quantization_level: str
    context_length: int
    embedding_length: int
    capabilities: list[str]  # what /api/show reports: completion, tools, vision, embedding
    size: int
    architecture: str = ""
    num_ctx: int | None = None  # a PARAMETER num_ctx in the Modelfile
    layers: list[tuple[str, int]] = field(default_factory=list)  # (digest, size) as pulled

    @property
    def arch(self) -> str:
        return self.architecture or self.family

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.name.encode()).hexdigest()


def _layers(name: str, size: int) -> list[tuple[str, int]]:
    sizes = [size, 1_429, 7_711, 96, 487]  # model, template, license, params, config
    return [(f"sha256:{hashlib.sha256(f'{name}/{i}'.encode()).hexdigest()}", n) for i, n in enumerate(sizes)]


def _catalogue() -> dict[str, FakeModel]:
    models = [
        FakeModel(
            "llama3.2:latest",
            "llama",
            ["llama"],
            "3.2B",
            "Q4_K_M",
            131072,
            3072,
            ["completion", "tools"],
            2_019_393_189,
        ),
        FakeModel(
            "nomic-embed-text:latest",
            "nomic-bert",
            ["nomic-bert"],
            "137M",
            "F16",
            2048,
            768,
            ["embedding"],
            274_302_450,
        ),
        FakeModel(
            "llava:latest",
            "llama",
            ["llama", "clip"],
            "7B",
            "Q4_0",
            32768,
            4096,
            ["completion", "vision"],
            4_733_363_377,
            num_ctx=4096,
        ),
        FakeModel(
            "qwen2.5:0.5b", "qwen2", ["qwen2"], "494.03M", "Q4_K_M", 32768, 896, ["completion", "tools"], 397_821_319
        ),
        FakeModel("all-minilm:latest", "bert", ["bert"], "23M", "F16", 512, 384, ["embedding"], 45_960_996),
    ]
    for model in models:
        model.layers = _layers(model.name, model.size)
    return {m.name: m for m in models}


def full_name(name: str) -> str:
    """Ollama's default tag: `llama3.2` is `llama3.2:latest`."""
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def now_rfc3339() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _vector(text: str, dims: int) -> list[float]:
    """A deterministic unit vector for `text` (Ollama's /api/embed normalises its output)."""
    values: list[float] = []
    counter = 0
    while len(values) < dims:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        values.extend((b - 127.5) / 127.5 for b in digest)
        counter += 1
    values = values[:dims]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [round(v / norm, 7) for v in values]


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI content parts on /v1
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


class FakeOllama(FakeServer):
    kind = "ollama"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        version: str = "0.12.6",
        api_key: str | None = None,
        show_capabilities: bool = True,
        installed: tuple[str, ...] = ("llama3.2:latest", "nomic-embed-text:latest", "llava:latest"),
        pull_step_s: float = 0.0,
        reply: str | None = None,
        has_ps: bool = True,
    ) -> None:
        super().__init__(host, port)
        self.has_ps = has_ps  # `GET /api/ps` (models loaded in memory) came with Ollama 0.1.38
        self.version = version
        self.api_key = api_key
        self.show_capabilities = show_capabilities  # Ollama < 0.6 had no `capabilities` in show
        self.pull_step_s = pull_step_s
        self.reply = reply
        self.registry = _catalogue()
        self.installed = installed
        self.models: dict[str, FakeModel] = {n: replace(self.registry[n]) for n in installed}
        self.loaded: dict[str, FakeModel] = {}  # what a chat or an embedding used, as Ollama keeps it

    def reset(self) -> None:
        """Clear faults and recorded requests, and forget pulled, deleted or loaded models."""
        super().reset()
        self.models = {n: replace(self.registry[n]) for n in self.installed}
        self.loaded = {}

    # -- frame --------------------------------------------------------------------------------

    def build_app(self) -> web.Application:
        app = super().build_app()
        app.middlewares.insert(0, self._remember_path)
        app.middlewares.append(self._check_auth)
        return app

    @web.middleware
    async def _remember_path(self, request: web.Request, handler: Any) -> web.StreamResponse:
        _path.set(request.path)
        return await handler(request)

    @web.middleware
    async def _check_auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if (
            self.api_key
            and not request.path.startswith("/__")
            and request.headers.get("Authorization") != f"Bearer {self.api_key}"
        ):
            return self._error(request, 401, "unauthorized")
        return await handler(request)

    def error_body(self, status: int, fault: Fault) -> dict[str, Any]:
        message = fault.error_code or {
            400: "invalid request",
            401: "unauthorized",
            404: 'model "llama3.2" not found, try pulling it first',
            429: "too many requests",
            503: "server busy, please try again.  maximum pending requests exceeded",
        }.get(status, "llama runner process has terminated: exit status 2")
        if _path.get().startswith("/v1/"):
            return {"error": {"message": message, "type": _openai_type(status), "param": None, "code": None}}
        return {"error": message}

    def _error(self, request: web.Request, status: int, message: str) -> web.Response:
        if request.path.startswith("/v1/"):
            body: dict[str, Any] = {
                "error": {"message": message, "type": _openai_type(status), "param": None, "code": None}
            }
        else:
            body = {"error": message}
        return web.json_response(body, status=status)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/", self.root)
        app.router.add_get("/api/version", self.api_version)
        app.router.add_get("/api/tags", self.tags)
        if self.has_ps:
            app.router.add_get("/api/ps", self.ps)
        app.router.add_post("/api/show", self.show)
        app.router.add_post("/api/chat", self.chat)
        app.router.add_post("/api/embed", self.embed)
        app.router.add_post("/api/pull", self.pull)
        app.router.add_delete("/api/delete", self.delete)
        app.router.add_get("/v1/models", self.openai_models)
        app.router.add_post("/v1/chat/completions", self.openai_chat)

    # -- helpers ------------------------------------------------------------------------------

    async def _json(self, request: web.Request) -> dict[str, Any] | web.Response:
        try:
            data = json.loads(await request.read() or b"{}")
        except ValueError as exc:
            return self._error(request, 400, f"invalid character in request body: {exc}")
        if not isinstance(data, dict):
            return self._error(request, 400, "json: cannot unmarshal array into Go value")
        return data

    def _model(self, request: web.Request, name: Any) -> FakeModel | web.Response:
        if not isinstance(name, str) or not name:
            return self._error(request, 400, "model is required")
        model = self.models.get(full_name(name))
        if model is None:
            return self._error(request, 404, f'model "{name}" not found, try pulling it first')
        return model

    def _answer(self, data: dict[str, Any], model: FakeModel) -> dict[str, Any]:
        """What the model 'says': a text reply or tool calls, and token counts."""
        messages = data.get("messages") or []
        prompt_tokens = sum(len(_text_of(m.get("content")).split()) + 4 for m in messages)
        last = messages[-1] if messages else {}
        tools = data.get("tools") or []
        if tools and last.get("role") == "user":
            calls = []
            for i, tool in enumerate(tools[:1]):
                fn = tool.get("function", {})
                params = fn.get("parameters", {}) or {}
                props = params.get("properties", {}) or {}
                args = {
                    name: _example(props.get(name, {}), _text_of(last.get("content")))
                    for name in params.get("required", list(props))
                }
                calls.append(
                    {
                        "id": f"call_{hashlib.sha1(json.dumps(args).encode()).hexdigest()[:8]}",
                        "function": {"index": i, "name": fn.get("name", ""), "arguments": args},
                    }
                )
            return {"text": "", "tool_calls": calls, "prompt": prompt_tokens, "tokens": [], "done_reason": "stop"}
        if last.get("role") == "tool":
            text = f"The tool answered: {_text_of(last.get('content'))}"
        else:
            user = next((_text_of(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), "")
            text = self.reply if self.reply is not None else f"Hello from {model.name.split(':')[0]}! You said: {user}"
        fmt = data.get("format")
        if fmt:
            text = json.dumps({"answer": text})
        words = text.split(" ")
        tokens = [w if i == 0 else " " + w for i, w in enumerate(words)]
        options = data.get("options") or {}
        limit = options.get("num_predict") or data.get("max_tokens") or data.get("max_completion_tokens")
        done_reason = "stop"
        if isinstance(limit, int) and 0 < limit < len(tokens):
            tokens, done_reason = tokens[:limit], "length"
        return {
            "text": "".join(tokens),
            "tool_calls": [],
            "prompt": prompt_tokens,
            "tokens": tokens,
            "done_reason": done_reason,
        }

    def _final(self, model: FakeModel, answer: dict[str, Any], content: str) -> dict[str, Any]:
        return {
            "model": model.name,
            "created_at": now_rfc3339(),
            "message": {"role": "assistant", "content": content},
            "done_reason": answer["done_reason"],
            "done": True,
            "total_duration": 1_268_516_458,
            "load_duration": 24_937_375,
            "prompt_eval_count": answer["prompt"],
            "prompt_eval_duration": 126_000_000,
            "eval_count": max(len(answer["tokens"]), 1 if answer["tool_calls"] else 0),
            "eval_duration": 1_104_000_000,
        }

    # -- native API ---------------------------------------------------------------------------

    async def root(self, request: web.Request) -> web.Response:
        return web.Response(text="Ollama is running")

    async def api_version(self, request: web.Request) -> web.Response:
        return web.json_response({"version": self.version})

    def _tag(self, model: FakeModel) -> dict[str, Any]:
        return {
            "name": model.name,
            "model": model.name,
            "modified_at": "2025-10-02T09:21:54.129347+02:00",
            "size": model.size,
            "digest": model.digest,
            "details": {
                "parent_model": "",
                "format": "gguf",
                "family": model.family,
                "families": model.families,
                "parameter_size": model.parameter_size,
                "quantization_level": model.quantization_level,
            },
        }

    async def tags(self, request: web.Request) -> web.Response:
        return web.json_response({"models": [self._tag(m) for m in self.models.values()]})

    async def ps(self, request: web.Request) -> web.Response:
        """The models in memory, as Ollama lists them (`size_vram`: the part on the GPU)."""
        models = [
            {**self._tag(m), "expires_at": "2099-01-01T00:05:00Z", "size_vram": m.size}
            for m in self.loaded.values()
            if m.name in self.models
        ]
        for row in models:
            row.pop("modified_at", None)
        return web.json_response({"models": models})

    async def show(self, request: web.Request) -> web.Response:
        data = await self._json(request)
        if isinstance(data, web.Response):
            return data
        model = self._model(request, data.get("model") or data.get("name"))
        if isinstance(model, web.Response):
            return model
        arch = model.arch
        parameters = 'stop                           "<|eot_id|>"'
        if model.num_ctx:
            parameters = f"num_ctx                        {model.num_ctx}\n{parameters}"
        body: dict[str, Any] = {
            "license": "LLAMA 3.2 COMMUNITY LICENSE AGREEMENT",
            "modelfile": f'# Modelfile generated by "ollama show"\nFROM {model.name}\n',
            "parameters": parameters,
            "template": "{{ if .System }}<|start_header_id|>system<|end_header_id|>{{ end }}",
            "details": self._tag(model)["details"],
            "model_info": {
                "general.architecture": arch,
                "general.file_type": 15,
                "general.parameter_count": 3_212_749_888,
                "general.quantization_version": 2,
                f"{arch}.attention.head_count": 24,
                f"{arch}.block_count": 28,
                f"{arch}.context_length": model.context_length,
                f"{arch}.embedding_length": model.embedding_length,
                "tokenizer.ggml.model": "gpt2",
            },
            "modified_at": "2025-10-02T09:21:54.129347+02:00",
        }
        if self.show_capabilities:
            body["capabilities"] = model.capabilities
        return web.json_response(body)

    async def chat(self, request: web.Request) -> web.StreamResponse:
        data = await self._json(request)
        if isinstance(data, web.Response):
            return data
        model = self._model(request, data.get("model"))
        if isinstance(model, web.Response):
            return model
        self.loaded[model.name] = model
        if "completion" not in model.capabilities:
            return self._error(request, 400, f'"{model.name}" does not support chat')
        messages = data.get("messages")
        if messages is not None and not isinstance(messages, list):
            return self._error(request, 400, "json: cannot unmarshal messages")
        answer = self._answer(data, model)
        if data.get("stream", True) is False:
            final = self._final(model, answer, answer["text"])
            if answer["tool_calls"]:
                final["message"]["tool_calls"] = answer["tool_calls"]
            return web.json_response(final)

        def line(obj: dict[str, Any]) -> bytes:
            return json.dumps(obj, separators=(",", ":")).encode() + b"\n"

        frames = [
            line(
                {
                    "model": model.name,
                    "created_at": now_rfc3339(),
                    "message": {"role": "assistant", "content": token},
                    "done": False,
                }
            )
            for token in answer["tokens"]
        ]
        if answer["tool_calls"]:
            frames.append(
                line(
                    {
                        "model": model.name,
                        "created_at": now_rfc3339(),
                        "message": {"role": "assistant", "content": "", "tool_calls": answer["tool_calls"]},
                        "done": False,
                    }
                )
            )
        frames.append(line(self._final(model, answer, "")))
        return await self.stream(request, frames, content_type="application/x-ndjson")

    async def embed(self, request: web.Request) -> web.Response:
        data = await self._json(request)
        if isinstance(data, web.Response):
            return data
        model = self._model(request, data.get("model"))
        if isinstance(model, web.Response):
            return model
        self.loaded[model.name] = model
        raw = data.get("input", [])
        inputs = [raw] if isinstance(raw, str) else raw
        if not isinstance(inputs, list) or not all(isinstance(i, str) for i in inputs):
            return self._error(request, 400, "invalid input type")
        dims = data.get("dimensions") or model.embedding_length
        return web.json_response(
            {
                "model": model.name,
                "embeddings": [_vector(text, int(dims)) for text in inputs],
                "total_duration": 14_143_917,
                "load_duration": 1_019_500,
                "prompt_eval_count": sum(max(1, len(t.split())) for t in inputs),
            }
        )

    async def delete(self, request: web.Request) -> web.Response:
        data = await self._json(request)
        if isinstance(data, web.Response):
            return data
        model = self._model(request, data.get("model") or data.get("name"))
        if isinstance(model, web.Response):
            return model
        self.models.pop(model.name, None)
        return web.Response(status=200)

    async def pull(self, request: web.Request) -> web.StreamResponse:
        data = await self._json(request)
        if isinstance(data, web.Response):
            return data
        name = data.get("model") or data.get("name")
        if not isinstance(name, str) or not name:
            return self._error(request, 400, "model is required")
        wanted = self.registry.get(full_name(name))

        if data.get("stream", True) is False:
            if wanted is None:
                return self._error(request, 500, "pull model manifest: file does not exist")
            self.models[wanted.name] = replace(wanted)
            return web.json_response({"status": "success"})

        async def frames() -> Any:
            yield _line({"status": "pulling manifest"})
            if wanted is None:
                yield _line({"error": "pull model manifest: file does not exist"})
                return
            for digest, total in wanted.layers:
                short = digest.removeprefix("sha256:")[:12]
                yield _line({"status": f"pulling {short}", "digest": digest, "total": total})
                steps = 4 if total > 1_000_000 else 1
                for step in range(1, steps + 1):
                    if self.pull_step_s:
                        await asyncio.sleep(self.pull_step_s)
                    yield _line(
                        {
                            "status": f"pulling {short}",
                            "digest": digest,
                            "total": total,
                            "completed": total * step // steps,
                        }
                    )
            yield _line({"status": "verifying sha256 digest"})
            yield _line({"status": "writing manifest"})
            self.models[wanted.name] = replace(wanted)
            yield _line({"status": "success"})

        return await self.stream(request, frames(), content_type="application/x-ndjson")

    # -- OpenAI-compatible API ----------------------------------------------------------------

    async def openai_models(self, request: web.Request) -> web.Response:
        created = int(time.time())
        return web.json_response(
            {
                "object": "list",
                "data": [
                    {
                        "id": m.name,
                        "object": "model",
                        "created": created,
                        "owned_by": m.name.split("/")[0] if "/" in m.name else "library",
                    }
                    for m in self.models.values()
                ],
            }
        )

    async def openai_chat(self, request: web.Request) -> web.StreamResponse:
        data = await self._json(request)
        if isinstance(data, web.Response):
            return data
        model = self._model(request, data.get("model"))
        if isinstance(model, web.Response):
            return model
        self.loaded[model.name] = model
        answer = self._answer(data, model)
        ident = f"chatcmpl-{hashlib.sha1(str(time.time_ns()).encode()).hexdigest()[:8]}"
        created = int(time.time())
        finish = "tool_calls" if answer["tool_calls"] else answer["done_reason"]
        usage = {
            "prompt_tokens": answer["prompt"],
            "completion_tokens": len(answer["tokens"]),
            "total_tokens": answer["prompt"] + len(answer["tokens"]),
        }
        tool_calls = [
            {
                "id": c["id"],
                "index": i,
                "type": "function",
                "function": {"name": c["function"]["name"], "arguments": json.dumps(c["function"]["arguments"])},
            }
            for i, c in enumerate(answer["tool_calls"])
        ]
        base = {"id": ident, "created": created, "model": model.name, "system_fingerprint": "fp_ollama"}
        if not data.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": answer["text"]}
            if tool_calls:
                message["tool_calls"] = [{k: v for k, v in c.items() if k != "index"} for c in tool_calls]
            return web.json_response(
                {
                    **base,
                    "object": "chat.completion",
                    "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                    "usage": usage,
                }
            )

        def chunk(delta: dict[str, Any], finish_reason: str | None) -> bytes:
            return sse(
                {
                    **base,
                    "object": "chat.completion.chunk",
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
                }
            )

        frames = [chunk({"role": "assistant", "content": t}, None) for t in answer["tokens"]]
        if tool_calls:
            frames.append(chunk({"role": "assistant", "content": "", "tool_calls": tool_calls}, None))
        frames.append(chunk({"role": "assistant", "content": ""}, finish))
        if (data.get("stream_options") or {}).get("include_usage"):
            frames.append(sse({**base, "object": "chat.completion.chunk", "choices": [], "usage": usage}))
        frames.append(sse("[DONE]"))
        return await self.stream(request, frames)


def _line(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


def _openai_type(status: int) -> str:
    return {400: "invalid_request_error", 404: "not_found_error"}.get(status, "api_error")


def _example(schema: dict[str, Any], text: str) -> Any:
    kind = schema.get("type")
    if "enum" in schema:
        return schema["enum"][0]
    if kind in ("integer", "number"):
        return 1
    if kind == "boolean":
        return True
    return text or "example"
