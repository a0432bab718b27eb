"""Ollama's native API (`/api/*`): chat with NDJSON streams, embeddings, and model management.

Requests arrive in OpenAI's shape and answers leave in it: `/api/chat` messages carry images
as bare base64 and tool-call arguments as objects (OpenAI: data URLs and JSON strings), and
sampling settings go into `options` (`max_tokens` is `num_predict`). Ollama's errors are
`{"error": "..."}` with real statuses; an error that happens after a stream has started comes
as one `{"error": ...}` line inside the 200 stream and is raised as a FAILURE.

Beyond the adapter contract, operators get `version()`, `show(model)` and `pull(model)`,
which yields progress dicts until Ollama reports `success`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import struct
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx

from providers.engine import Classification, Outcome, UpstreamError

from . import wirejson
from .base import (
    Adapter,
    ChatStream,
    ModelInfo,
    Result,
    Unsupported,
    Usage,
    bad_request,
    json_object,
    malformed,
)
from .client import fetch

# Families and name fragments that mark a model as an embedding model or a vision model, for
# Ollama versions whose /api/show does not list `capabilities` (before 0.6).
_EMBEDDING_FAMILIES = frozenset({"bert", "nomic-bert", "nomic-bert-moe", "xlm-roberta", "jina-bert-v2"})
_EMBEDDING_HINTS = ("embed", "minilm", "bge-", "bge:", "e5-", "gte-", "paraphrase")
_VISION_FAMILIES = frozenset({"clip", "mllama", "qwen2vl", "qwen25vl", "llava"})
_VISION_HINTS = ("llava", "vision", "-vl", "moondream", "minicpm-v")

_FINISH = {"stop": "stop", "length": "length", "load": "stop", "unload": "stop"}
_SAMPLING = ("temperature", "top_p", "seed", "presence_penalty", "frequency_penalty")


class OllamaAdapter(Adapter):
    kind = "ollama"
    capabilities = frozenset({"chat", "embeddings"})
    default_base_url = "http://127.0.0.1:11434"

    # -- chat ---------------------------------------------------------------------------------

    async def chat(self, request: dict[str, Any], *, model: str, timeout: float) -> Result:
        body = await self._chat_body(request, model, stream=False, timeout=timeout)
        response = await self.client.post(
            f"{self.base_url}/api/chat", json=body, headers=self._headers(), timeout=self.timeout(timeout)
        )
        await self.check(response)
        data = json_object(response)
        completion = _completion(data, model)
        usage = Usage(tokens_in=_count(data, "prompt_eval_count"), tokens_out=_count(data, "eval_count"))
        return Result.json(completion, usage=usage, model=completion["model"])

    async def chat_stream(self, request: dict[str, Any], *, model: str, timeout: float) -> ChatStream:
        body = await self._chat_body(request, model, stream=True, timeout=timeout)
        response = await self.send_streaming(
            "POST",
            f"{self.base_url}/api/chat",
            json=body,
            headers=self._headers(),
            timeout=self.stream_timeout(timeout),
        )
        include_usage = bool((request.get("stream_options") or {}).get("include_usage"))
        return ChatStream.of(lambda stream: _chunks(response, stream, include_usage), model=model, response=response)

    async def _chat_body(self, request: dict[str, Any], model: str, *, stream: bool, timeout: float) -> dict[str, Any]:
        messages = request.get("messages")
        if not isinstance(messages, list):
            raise bad_request("'messages' must be a list")
        body: dict[str, Any] = {
            "model": model,
            "messages": await self._messages(messages, timeout),
            "stream": stream,
        }
        options: dict[str, Any] = dict(self.config.options.get("model_options") or {})
        for name in _SAMPLING:
            if request.get(name) is not None:
                options[name] = request[name]
        max_tokens = request.get("max_completion_tokens", request.get("max_tokens"))
        if max_tokens is not None:
            options["num_predict"] = max_tokens
        stop = request.get("stop")
        if stop:
            options["stop"] = [stop] if isinstance(stop, str) else list(stop)
        if options:
            body["options"] = options
        if request.get("tools"):
            body["tools"] = request["tools"]
        response_format = request.get("response_format") or {}
        if response_format.get("type") == "json_object":
            body["format"] = "json"
        elif response_format.get("type") == "json_schema":
            body["format"] = (response_format.get("json_schema") or {}).get("schema", {})
        if "keep_alive" in self.config.options:
            body["keep_alive"] = self.config.options["keep_alive"]
        return body

    async def _messages(self, messages: list[Any], timeout: float) -> list[dict[str, Any]]:
        tool_names: dict[str, str] = {}
        out: list[dict[str, Any]] = []
        for message in messages:
            if not isinstance(message, dict):
                raise bad_request("each message must be an object")
            role = message.get("role")
            converted: dict[str, Any] = {"role": "system" if role == "developer" else role}
            text, images = await self._content(message.get("content"), timeout)
            converted["content"] = text
            if images:
                converted["images"] = images
            if message.get("tool_calls"):
                calls = []
                for call in message["tool_calls"]:
                    function = call.get("function") or {}
                    if call.get("id"):
                        tool_names[call["id"]] = function.get("name", "")
                    calls.append(
                        {
                            "function": {
                                "name": function.get("name", ""),
                                "arguments": _arguments(function.get("arguments")),
                            }
                        }
                    )
                converted["tool_calls"] = calls
            if role == "tool":
                name = message.get("name") or tool_names.get(message.get("tool_call_id", ""))
                if name:
                    converted["tool_name"] = name
            out.append(converted)
        return out

    async def _content(self, content: Any, timeout: float) -> tuple[str, list[str]]:
        if content is None or isinstance(content, str):
            return content or "", []
        if not isinstance(content, list):
            raise bad_request("message content must be a string or a list of parts")
        texts: list[str] = []
        images: list[str] = []
        for part in content:
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text":
                texts.append(part.get("text", ""))
            elif kind == "image_url":
                ref = part.get("image_url")
                url = ref.get("url", "") if isinstance(ref, dict) else str(ref or "")
                images.append(await self._image(url, timeout))
            else:
                raise Unsupported(self.kind, f"content parts of type {kind!r}")
        return "\n".join(texts), images

    async def _image(self, url: str, timeout: float) -> str:
        """Ollama wants bare base64; OpenAI clients send data URLs or links."""
        if url.startswith("data:"):
            _, _, payload = url.partition(",")
            if not payload:
                raise bad_request("empty image data URL")
            return payload
        if url.startswith(("http://", "https://")):
            # The caller's URL, so the caller's fault if it cannot be fetched (a 400, no
            # breaker effect); loopback, private and metadata addresses are refused.
            response = await fetch(
                self.client,
                url,
                timeout=timeout,
                supplied_by="caller",
                what="image_url",
                connect_timeout=self.config.connect_timeout_s,
            )
            return base64.b64encode(response.content).decode()
        raise bad_request("image_url must be a data URL or an http(s) URL")

    # -- embeddings ---------------------------------------------------------------------------

    async def embeddings(self, request: dict[str, Any], *, model: str, timeout: float) -> Result:
        raw = request.get("input")
        inputs = [raw] if isinstance(raw, str) else raw
        if not isinstance(inputs, list) or not all(isinstance(i, str) for i in inputs):
            raise bad_request("'input' must be a string or a list of strings (token arrays are not supported)")
        body: dict[str, Any] = {"model": model, "input": inputs}
        if request.get("dimensions"):
            body["dimensions"] = request["dimensions"]
        response = await self.client.post(
            f"{self.base_url}/api/embed", json=body, headers=self._headers(), timeout=self.timeout(timeout)
        )
        await self.check(response)
        data = json_object(response)
        vectors = data.get("embeddings")
        if not isinstance(vectors, list):
            raise malformed(response=response, message="no 'embeddings' in the answer")
        as_base64 = request.get("encoding_format") == "base64"
        tokens = _count(data, "prompt_eval_count")
        answered: str = data.get("model") or model
        answer = {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": _base64_floats(v) if as_base64 else v}
                for i, v in enumerate(vectors)
            ],
            "model": answered,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        return Result.json(answer, usage=Usage(tokens_in=tokens), model=answered)

    # -- management ---------------------------------------------------------------------------

    async def version(self, *, timeout: float = 5.0) -> str:
        data = await self._get("/api/version", timeout)
        return str(data.get("version", ""))

    async def show(self, model: str, *, timeout: float = 10.0) -> dict[str, Any]:
        """Ollama's /api/show answer for one model (details, model_info, parameters, ...)."""
        response = await self.client.post(
            f"{self.base_url}/api/show",
            json={"model": model},
            headers=self._headers(),
            timeout=self.timeout(timeout),
        )
        await self.check(response)
        return json_object(response)

    async def list_models(self, *, timeout: float) -> list[ModelInfo]:
        """Installed models, each with capabilities and the context window from /api/show.

        A model whose /api/show fails is still listed, without a context window and with the
        error in `details["show_error"]`.
        """
        tags = await self._get("/api/tags", timeout)
        entries = [m for m in tags.get("models") or [] if isinstance(m, dict)]
        limit = asyncio.Semaphore(8)

        async def show(name: str) -> dict[str, Any] | Exception:
            async with limit:
                try:
                    return await self.show(name, timeout=timeout)
                except (UpstreamError, httpx.HTTPError, ValueError) as exc:
                    return exc

        names = [str(m.get("model") or m.get("name")) for m in entries]
        shows = await asyncio.gather(*(show(name) for name in names))
        return [_model_info(name, entry, shown) for name, entry, shown in zip(names, entries, shows, strict=True)]

    async def pull(self, model: str, *, timeout: float = 60.0, insecure: bool = False) -> AsyncIterator[dict[str, Any]]:
        """Download a model, yielding {status, digest, total, completed, percent} per line.

        `percent` is the overall progress over the layers announced so far (100.0 on success);
        `timeout` bounds each wait for the next line, not the whole download. An error line
        raises `UpstreamError`; so does a stream that ends without `success`.
        """
        body = {"model": model, "stream": True}
        if insecure:
            body["insecure"] = True
        request = self.client.build_request(
            "POST",
            f"{self.base_url}/api/pull",
            json=body,
            headers=self._headers(),
            timeout=self.timeout(timeout),
        )
        response = await self.client.send(request, stream=True)
        try:
            await self.check(response)
            totals: dict[str, int] = {}
            done: dict[str, int] = {}
            async for line in response.aiter_lines():
                if not line.strip():
                    continue
                data = _line_object(response, line)
                if "error" in data:
                    raise _stream_error(response, line, data["error"], pulling=True)
                status = str(data.get("status", ""))
                digest = data.get("digest")
                if digest and data.get("total"):
                    totals[digest] = int(data["total"])
                    done[digest] = int(data.get("completed") or 0)
                overall = sum(totals.values())
                percent = round(100.0 * sum(done.values()) / overall, 1) if overall else 0.0
                if status == "success":
                    percent = 100.0
                yield {
                    "status": status,
                    "digest": digest,
                    "total": data.get("total"),
                    "completed": data.get("completed"),
                    "percent": percent,
                }
                if status == "success":
                    return
            raise malformed(
                response=response, message="the pull stream ended without 'success'", reason="incomplete_stream"
            )
        finally:
            await response.aclose()

    async def probe(self, *, timeout: float, deep: bool = False, model: str | None = None) -> dict[str, Any]:
        version = await self.version(timeout=timeout)
        tags = await self._get("/api/tags", timeout)
        details: dict[str, Any] = {"version": version, "models": len(tags.get("models") or [])}
        loaded = await self._loaded(timeout)
        if loaded is not None:
            details["loaded"] = loaded
        if deep and model:
            result = await self.chat(
                {"messages": [{"role": "user", "content": "ping"}], "max_tokens": 1},
                model=model,
                timeout=timeout,
            )
            details["tokens"] = result.usage.tokens_in + result.usage.tokens_out
        return details

    async def _loaded(self, timeout: float) -> list[dict[str, Any]] | None:
        """The models Ollama holds in memory (`GET /api/ps`): name, and bytes on the GPU
        (`size_vram`) as the provider page shows them; None from a server too old to say
        (before 0.1.38 it answers 404)."""
        response = await self._request("/api/ps", timeout)
        if response.status_code == 404:
            return None
        await self.check(response)
        rows = json_object(response).get("models")
        if not isinstance(rows, list):
            return []
        return [
            {
                "name": str(row["name"]),
                "size_vram": row.get("size_vram") if isinstance(row.get("size_vram"), int) else 0,
            }
            for row in rows
            if isinstance(row, dict) and row.get("name")
        ]

    # -- plumbing -----------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        # Ollama itself has no authentication; a key is for a reverse proxy in front of it.
        return {"Authorization": f"Bearer {self.config.api_key}"} if self.config.api_key else {}

    async def _request(self, path: str, timeout: float) -> httpx.Response:
        return await self.client.get(f"{self.base_url}{path}", headers=self._headers(), timeout=self.timeout(timeout))

    async def _get(self, path: str, timeout: float) -> dict[str, Any]:
        response = await self._request(path, timeout)
        await self.check(response)
        return json_object(response)


async def _chunks(response: httpx.Response, stream: ChatStream, include_usage: bool) -> AsyncIterator[dict[str, Any]]:
    ident = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    created = int(time.time())
    first = True
    tool_index = 0

    def chunk(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        return {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": created,
            "model": stream.model,
            "system_fingerprint": "fp_ollama",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }

    try:
        async for line in response.aiter_lines():
            if not line.strip():
                continue
            data = _line_object(response, line)
            if "error" in data:
                raise _stream_error(response, line, data["error"])
            stream.model = data.get("model") or stream.model
            message = data.get("message") or {}
            delta: dict[str, Any] = {"role": "assistant"} if first else {}
            if message.get("content"):
                delta["content"] = message["content"]
            if message.get("thinking"):
                delta["reasoning_content"] = message["thinking"]
            calls = _tool_calls(message.get("tool_calls"), start=tool_index)
            if calls:
                delta["tool_calls"] = [{"index": tool_index + i, **c} for i, c in enumerate(calls)]
                tool_index += len(calls)
            if delta:
                if first:
                    delta.setdefault("content", "")
                yield chunk(delta, None)
            first = False
            if data.get("done"):
                stream.usage.tokens_in = _count(data, "prompt_eval_count")
                stream.usage.tokens_out = _count(data, "eval_count")
                yield chunk({}, _finish(data.get("done_reason"), tool_index > 0))
                if include_usage:
                    usage = _openai_usage(stream.usage)
                    yield {
                        "id": ident,
                        "object": "chat.completion.chunk",
                        "created": created,
                        "model": stream.model,
                        "choices": [],
                        "usage": usage,
                    }
                return
        raise malformed(
            response=response, message="the stream ended before Ollama said done", reason="incomplete_stream"
        )
    finally:
        await response.aclose()


def _completion(data: dict[str, Any], model: str) -> dict[str, Any]:
    message = data.get("message")
    if not isinstance(message, dict):
        raise UpstreamError(
            Classification(Outcome.FAILURE, "malformed_response"),
            status=200,
            message="no 'message' in Ollama's answer",
            body=json.dumps(data).encode(),
        )
    calls = _tool_calls(message.get("tool_calls"))
    content = message.get("content") or ""
    out: dict[str, Any] = {"role": "assistant", "content": content if content or not calls else None}
    if calls:
        out["tool_calls"] = calls
    if message.get("thinking"):
        out["reasoning_content"] = message["thinking"]
    usage = Usage(tokens_in=_count(data, "prompt_eval_count"), tokens_out=_count(data, "eval_count"))
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": data.get("model") or model,
        "system_fingerprint": "fp_ollama",
        "choices": [
            {
                "index": 0,
                "message": out,
                "logprobs": None,
                "finish_reason": _finish(data.get("done_reason"), bool(calls)),
            }
        ],
        "usage": _openai_usage(usage),
    }


def _tool_calls(calls: Any, start: int = 0) -> list[dict[str, Any]]:
    out = []
    for i, call in enumerate(calls or []):
        function = call.get("function") or {}
        arguments = function.get("arguments", {})
        out.append(
            {
                "id": call.get("id") or f"call_{uuid.uuid4().hex[:8]}_{start + i}",
                "type": "function",
                "function": {
                    "name": function.get("name", ""),
                    "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments),
                },
            }
        )
    return out


def _arguments(arguments: Any) -> Any:
    if isinstance(arguments, str):
        try:
            return json.loads(arguments or "{}")
        except ValueError as exc:
            raise bad_request(f"tool call arguments are not JSON: {exc}") from exc
    return arguments or {}


def _finish(done_reason: Any, tool_calls: bool) -> str:
    if tool_calls:
        return "tool_calls"
    return _FINISH.get(str(done_reason or "stop"), "stop")


def _openai_usage(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.tokens_in,
        "completion_tokens": usage.tokens_out,
        "total_tokens": usage.tokens_in + usage.tokens_out,
    }


def _count(data: dict[str, Any], key: str) -> int:
    value = data.get(key)
    return int(value) if isinstance(value, int | float) else 0


def _base64_floats(vector: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def _model_info(name: str, entry: dict[str, Any], shown: dict[str, Any] | Exception) -> ModelInfo:
    tag_details = entry.get("details") or {}
    details: dict[str, Any] = {
        "family": tag_details.get("family"),
        "families": tag_details.get("families") or [],
        "parameter_size": tag_details.get("parameter_size"),
        "quantization_level": tag_details.get("quantization_level"),
        "size": entry.get("size"),
        "digest": entry.get("digest"),
    }
    context: int | None = None
    features: list[str] | None = None
    if isinstance(shown, Exception):
        details["show_error"] = str(shown)
    else:
        context, num_ctx = _context_window(shown)
        details["num_ctx"] = num_ctx
        if isinstance(shown.get("capabilities"), list):
            features = [str(c) for c in shown["capabilities"]]
            details["features"] = features
    return ModelInfo(
        name=name, capabilities=_capabilities(name, details, features), context_window=context, details=details
    )


def _capabilities(name: str, details: dict[str, Any], features: list[str] | None) -> frozenset[str]:
    if features is not None:
        caps = set()
        if "embedding" in features:
            caps.add("embeddings")
        if "completion" in features:
            caps.add("chat")
        if "vision" in features:
            caps.add("vision")
        return frozenset(caps or {"chat"})
    families = {str(details.get("family") or "")} | {str(f) for f in details.get("families") or []}
    lowered = name.lower()
    if families & _EMBEDDING_FAMILIES or any(h in lowered for h in _EMBEDDING_HINTS):
        return frozenset({"embeddings"})
    if families & _VISION_FAMILIES or any(h in lowered for h in _VISION_HINTS):
        return frozenset({"chat", "vision"})
    return frozenset({"chat"})


def _context_window(shown: dict[str, Any]) -> tuple[int | None, int | None]:
    """(trained context length from model_info, num_ctx from the Modelfile's parameters)."""
    info = shown.get("model_info") or {}
    arch = info.get("general.architecture")
    trained = info.get(f"{arch}.context_length") if arch else None
    if trained is None:
        trained = next((v for k, v in info.items() if k.endswith(".context_length")), None)
    num_ctx = None
    for line in str(shown.get("parameters") or "").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "num_ctx" and parts[1].isdigit():
            num_ctx = int(parts[1])
    context = trained if isinstance(trained, int) else num_ctx
    return context, num_ctx


def _line_object(response: httpx.Response, line: str) -> dict[str, Any]:
    try:
        data = wirejson.loads(line)
    except ValueError as exc:
        raise malformed(
            response=response, message=f"a stream line is not JSON: {line[:80]!r}", body=line.encode()
        ) from exc
    if not isinstance(data, dict):
        raise malformed(response=response, message="a stream line is not a JSON object", body=line.encode())
    return data


def _stream_error(response: httpx.Response, line: str, error: Any, *, pulling: bool = False) -> UpstreamError:
    message = str(error)
    lowered = message.lower()
    if pulling and ("does not exist" in lowered or "not found" in lowered):
        # The registry has no such model: the operator asked for a wrong name.
        classification = Classification(Outcome.CALLER_ERROR, "model_not_found")
    else:
        classification = Classification(Outcome.FAILURE, "stream_error")
    return UpstreamError(classification, status=response.status_code, message=message, body=line.encode())
