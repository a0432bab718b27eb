"""OpenAI's wire format, spoken by OpenAI and by the many servers that copy it.

OpenRouter, Together, Groq, vLLM, llama.cpp's server and LM Studio answer on the same paths
under a base URL that ends in `/v1`. Requests go upstream as the caller sent them with only
`model` replaced; JSON answers come back as the provider's own bytes, so the gateway
re-serialises nothing on the hot path.

Errors: a non-2xx answer raises `UpstreamError.from_response` (status, headers and body kept);
a 200 whose body is not JSON raises `UpstreamError` FAILURE `malformed_response`; a stream that
stops before `data: [DONE]` raises FAILURE `stream_broken`, and one that breaks mid-way lets
httpx's transport error through. Both are FAILURE for the engine.

Speech: the caller's `response_format` goes upstream as sent, and the answer must be in it
(speech.py): audio evidently in another format is a FAILURE `wrong_audio_format`, so the engine
falls back rather than serve it; the Content-Type is the asked format's. OpenAI makes mp3, opus,
aac, flac, wav and pcm; a local server that makes fewer says which in `speech_formats`, and a
request for another is skipped before anything is sent (`Adapter.speech_format`).

Local speech servers (Kokoro-FastAPI, Chatterbox TTS API, Speaches, openedai-speech) copy
`POST /v1/audio/speech` and are this kind with capability `tts`. Some have no `GET /v1/models`:
when it answers 404 or 405 the probe asks for one spoken word instead, so it proves what the
routes use (a wrong base URL still fails: its speech call is a 404 too).

Options (`ProviderConfig.options`):
    stream_include_usage  add `stream_options.include_usage` to streams the caller left
                          without `stream_options` (default true; turn off for a server that
                          rejects the field)
    speech_formats        the `response_format`s the server really makes, e.g. ["wav"] for a
                          Chatterbox server that always writes WAV (default: all six of OpenAI's)
    probe                 "models" (default: GET /models, a deep probe a one-token chat) or
                          "speech" (every probe one spoken word: for a TTS-only server)
    probe_voice           the voice that word is spoken in (default "alloy"; Kokoro: "af_heart")
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx

from providers.engine import Classification, Outcome, UpstreamError

from . import wirejson
from .base import (
    SPEECH_FORMATS,
    Adapter,
    ChatStream,
    ModelInfo,
    ProviderConfig,
    Result,
    Usage,
    json_object,
    malformed,
    stream_broken,
    wav_seconds,
)
from .speech import found_format, served_type
from .sse import as_read, read_sse

__all__ = ["OpenAIAdapter", "infer_capabilities"]

# Substrings of model ids, checked in order; the first hit decides. Anything else is chat.
_CAPABILITY_HINTS: tuple[tuple[tuple[str, ...], frozenset[str]], ...] = (
    (("embed", "bge-", "gte-", "e5-"), frozenset({"embeddings"})),
    (("moderation",), frozenset()),
    (("dall-e", "gpt-image", "stable-diffusion", "sdxl", "flux", "imagen"), frozenset({"image"})),
    (("tts",), frozenset({"tts"})),
    (("whisper", "transcribe"), frozenset({"stt"})),
)


def infer_capabilities(model_id: str) -> frozenset[str]:
    """What a model can do, guessed from its id (OpenAI-compatible servers do not say)."""
    lowered = model_id.lower()
    for needles, capabilities in _CAPABILITY_HINTS:
        if any(needle in lowered for needle in needles):
            return capabilities
    return frozenset({"chat"})


def _context_window(item: Mapping[str, Any]) -> int | None:
    """The context length a /models entry exposes, in whichever field its server uses."""
    candidates: list[Any] = [
        item.get("context_length"),  # OpenRouter, Together
        item.get("context_window"),  # Groq
        item.get("max_model_len"),  # vLLM
        item.get("max_context_length"),  # LM Studio
        item.get("loaded_context_length"),  # LM Studio, when loaded
    ]
    meta = item.get("meta")
    if isinstance(meta, Mapping):
        candidates += [meta.get("n_ctx"), meta.get("n_ctx_train")]  # llama.cpp
    top = item.get("top_provider")
    if isinstance(top, Mapping):
        candidates.append(top.get("context_length"))  # OpenRouter
    for value in candidates:
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            return int(value)
    return None


def _form_value(value: Any) -> str:
    return json.dumps(value) if isinstance(value, bool) else str(value)


def _usage_of(reported: Any) -> Usage:
    if not isinstance(reported, Mapping):
        return Usage()
    tokens_in = reported.get("prompt_tokens", reported.get("input_tokens")) or 0
    tokens_out = reported.get("completion_tokens", reported.get("output_tokens")) or 0
    return Usage(tokens_in=int(tokens_in), tokens_out=int(tokens_out))


PROBES = ("models", "speech")


class OpenAIAdapter(Adapter):
    kind = "openai"
    capabilities = frozenset({"chat", "embeddings", "image", "tts", "stt"})
    default_base_url = "https://api.openai.com/v1"
    speech_formats = frozenset(SPEECH_FORMATS)

    def __init__(self, config: ProviderConfig, client: httpx.AsyncClient) -> None:
        super().__init__(config, client)
        formats = config.options.get("speech_formats")
        if formats:
            self.speech_formats = frozenset(formats)

    @classmethod
    def validate_options(cls, options: Mapping[str, Any]) -> None:
        formats = options.get("speech_formats")
        if formats is not None and (
            not isinstance(formats, list | tuple) or not formats or not set(formats) <= set(SPEECH_FORMATS)
        ):
            raise ValueError(f"speech_formats must be a non-empty list of {', '.join(SPEECH_FORMATS)}")
        if options.get("probe", "models") not in PROBES:
            raise ValueError(f"probe must be one of {', '.join(PROBES)}")
        voice = options.get("probe_voice")
        if voice is not None and (not isinstance(voice, str) or not voice):
            raise ValueError("probe_voice must be a voice name")

    # -- plumbing -----------------------------------------------------------------------------

    def headers(self) -> dict[str, str]:
        # llama.cpp and most local servers need no key; sending an empty Bearer would be wrong.
        if self.config.api_key:
            return {"Authorization": f"Bearer {self.config.api_key}"}
        return {}

    async def _post(self, path: str, timeout: float, **kwargs: Any) -> httpx.Response:
        response = await self.client.post(
            self.url(path), headers=self.headers(), timeout=self.timeout(timeout), **kwargs
        )
        return await self.check(response)

    def _json(self, response: httpx.Response) -> dict[str, Any]:
        data = json_object(response)
        if "error" in data and not any(k in data for k in ("choices", "data", "object")):
            # Some routers (OpenRouter) report an upstream failure inside a 200.
            error = data["error"]
            code = error.get("code") if isinstance(error, Mapping) else None
            status = code if isinstance(code, int) and 400 <= code < 600 else 502
            raise UpstreamError.from_response(status, response.headers, response.content)
        return data

    async def _post_json(
        self, path: str, body: dict[str, Any], timeout: float
    ) -> tuple[httpx.Response, dict[str, Any]]:
        response = await self._post(path, timeout, json=body)
        return response, self._json(response)

    # -- chat ---------------------------------------------------------------------------------

    async def chat(self, request: dict[str, Any], *, model: str, timeout: float) -> Result:
        body = {k: v for k, v in request.items() if k not in ("stream", "stream_options")}
        body["model"] = model
        response, data = await self._post_json("/chat/completions", body, timeout)
        if not isinstance(data.get("choices"), list):
            raise malformed("chat answer has no choices", response=response)
        return Result(
            content=response.content,
            usage=_usage_of(data.get("usage")),
            model=data.get("model") or model,
            data=data,
        )

    async def chat_stream(self, request: dict[str, Any], *, model: str, timeout: float) -> ChatStream:
        body = {**request, "model": model, "stream": True}
        inject_usage = "stream_options" not in request and bool(self.config.options.get("stream_include_usage", True))
        if inject_usage:
            body["stream_options"] = {"include_usage": True}
        response = await self.send_streaming(
            "POST",
            self.url("/chat/completions"),
            json=body,
            headers=self.headers(),
            timeout=self.stream_timeout(timeout),
        )
        usage = Usage()
        chunks = self._chunks(response, usage, hide_usage=inject_usage)
        stream = ChatStream(chunks, model=model, response=response)
        stream.usage = usage  # filled in place as the usage chunk arrives
        return stream

    async def _chunks(
        self, response: httpx.Response, usage: Usage, *, hide_usage: bool
    ) -> AsyncIterator[dict[str, Any]]:
        try:
            async for _event, data in read_sse(response):
                if data.strip() == "[DONE]":
                    return
                try:
                    chunk = wirejson.loads(data)
                except ValueError as exc:
                    raise stream_broken(response, f"unreadable chunk: {data[:120]!r}", "malformed_response") from exc
                if not isinstance(chunk, dict):
                    raise stream_broken(response, f"unreadable chunk: {data[:120]!r}", "malformed_response")
                if "error" in chunk and not chunk.get("choices"):
                    error = chunk["error"]
                    message = error.get("message") if isinstance(error, Mapping) else str(error)
                    raise stream_broken(response, f"error mid-stream: {message}", "stream_error")
                reported = chunk.get("usage")
                if isinstance(reported, Mapping):
                    found = _usage_of(reported)
                    usage.tokens_in, usage.tokens_out = found.tokens_in, found.tokens_out
                if hide_usage and "usage" in chunk:
                    # The caller did not ask for the usage chunk: it would see an empty `choices`.
                    if reported and not chunk.get("choices"):
                        continue
                    if reported is None:
                        del chunk["usage"]
                        yield chunk
                        continue
                # Unchanged: relayed as the provider wrote it, where the caller's shape is this one.
                yield as_read(chunk, data)
            raise stream_broken(response, "stream ended before data: [DONE]")
        finally:
            await response.aclose()

    # -- other capabilities -----------------------------------------------------------------

    async def embeddings(self, request: dict[str, Any], *, model: str, timeout: float) -> Result:
        response, data = await self._post_json("/embeddings", {**request, "model": model}, timeout)
        return Result(
            content=response.content,
            usage=_usage_of(data.get("usage")),
            model=data.get("model") or model,
            data=data,
        )

    async def images(self, request: dict[str, Any], *, model: str, timeout: float) -> Result:
        response, data = await self._post_json("/images/generations", {**request, "model": model}, timeout)
        usage = _usage_of(data.get("usage"))
        usage.images = len(data.get("data") or [])
        return Result(content=response.content, usage=usage, model=model, data=data)

    async def speech(self, request: dict[str, Any], *, model: str, timeout: float) -> Result:
        wanted = self.speech_format(request)
        response = await self._post("/audio/speech", timeout, json={**request, "model": model})
        text = request.get("input")
        return Result(
            content=response.content,
            media_type=served_type(self.kind, wanted, response),
            usage=Usage(characters=len(text) if isinstance(text, str) else 0),
            model=model,
        )

    async def transcription(
        self, request: dict[str, Any], audio: bytes, filename: str, *, model: str, timeout: float
    ) -> Result:
        # Form fields as OpenAI reads them: lists as repeated `name[]`, booleans as JSON.
        fields: dict[str, str | list[str]] = {"model": model}
        for key, value in request.items():
            if key in ("model", "file"):
                continue
            if isinstance(value, list | tuple):
                fields[key if key.endswith("[]") else f"{key}[]"] = [_form_value(v) for v in value]
            else:
                fields[key] = _form_value(value)
        response = await self._post("/audio/transcriptions", timeout, data=fields, files={"file": (filename, audio)})
        media_type = response.headers.get("content-type", "application/json").split(";")[0].strip()
        if media_type != "application/json":  # response_format text, srt or vtt
            return Result(content=response.content, media_type=media_type, model=model)
        data = self._json(response)
        reported = data.get("usage")
        if not isinstance(reported, Mapping):
            reported = {}
        usage = _usage_of(reported)
        seconds = data.get("duration", reported.get("seconds") if reported.get("type") == "duration" else None)
        if not isinstance(seconds, int | float):
            # Whisper servers' plain `json` answer has no duration; a WAV upload says its own.
            seconds = wav_seconds(audio)
        usage.audio_seconds = float(seconds) if seconds is not None else 0.0
        return Result(content=response.content, usage=usage, model=model, data=data)

    # -- discovery and health ---------------------------------------------------------------

    async def list_models(self, *, timeout: float) -> list[ModelInfo]:
        response = await self.client.get(
            self.base_url + "/models", headers=self.headers(), timeout=self.timeout(timeout)
        )
        await self.check(response)
        # OpenAI's shape is {"data": [...]}; some compatible servers (Together) answer the array itself.
        try:
            listed = json.loads(response.content)
        except ValueError as exc:
            raise malformed(f"the answer is not JSON: {exc}", response=response) from exc
        items = listed if isinstance(listed, list) else self._json(response).get("data")
        if not isinstance(items, list):
            raise malformed("model list has no data array", response=response)
        models = []
        for item in items:
            if not isinstance(item, Mapping) or not isinstance(item.get("id"), str):
                continue
            models.append(
                ModelInfo(
                    name=item["id"],
                    capabilities=infer_capabilities(item["id"]),
                    context_window=_context_window(item),
                    details={k: v for k, v in item.items() if k != "id"},
                )
            )
        return models

    async def probe(self, *, timeout: float, deep: bool = False, model: str | None = None) -> dict[str, Any]:
        if self.config.options.get("probe") == "speech" or (deep and model is not None and _speaks(model)):
            return await self._speech_probe(model, timeout)
        if not deep:
            try:
                models = await self.list_models(timeout=timeout)
            except UpstreamError as exc:
                if exc.status not in (404, 405):
                    raise
                # No model list: a speech-only server (Chatterbox-style) is asked to speak.
                return await self._speech_probe(model, timeout)
            return {"models": len(models)}
        if model is None:
            listed = await self.list_models(timeout=timeout)
            chat_models = [m.name for m in listed if "chat" in m.capabilities]
            if not chat_models:
                speech_models = [m.name for m in listed if "tts" in m.capabilities]
                if speech_models:
                    return await self._speech_probe(speech_models[0], timeout)
                raise UpstreamError(
                    Classification(Outcome.FAILURE, "no_chat_model"),
                    message="deep probe: the provider lists no chat model",
                )
            model = chat_models[0]
        ping = {"messages": [{"role": "user", "content": "ping"}], "max_tokens": 1}
        try:
            result = await self.chat(ping, model=model, timeout=timeout)
        except UpstreamError as exc:
            # o-series models refuse max_tokens and name its replacement in the 400.
            if exc.status != 400 or b"max_completion_tokens" not in exc.body:
                raise
            ping = {"messages": ping["messages"], "max_completion_tokens": 1}
            result = await self.chat(ping, model=model, timeout=timeout)
        choice = (result.data.get("choices") or [{}])[0]
        return {
            "model": result.model,
            "finish_reason": choice.get("finish_reason"),
            "tokens_in": result.usage.tokens_in,
            "tokens_out": result.usage.tokens_out,
        }

    async def _speech_probe(self, model: str | None, timeout: float) -> dict[str, Any]:
        """One spoken word: the cheapest call a speech-only server proves itself with."""
        voice = self.config.options.get("probe_voice") or "alloy"
        request = {"input": "ok", "voice": voice}
        response = await self._post("/audio/speech", timeout, json={**request, "model": model or "tts-1"})
        label = response.headers.get("content-type", "").split(";")[0].strip()
        found = found_format(None, label, response.content)
        if found is None and (not response.content or label == "application/json"):
            raise malformed("the speech probe answered no audio", response=response)
        return {"speech": True, "audio_format": found or label, "audio_bytes": len(response.content)}


def _speaks(model: str) -> bool:
    return "tts" in infer_capabilities(model)
