"""whisper-asr-webservice (github.com/ahmetoner/whisper-asr-webservice, port 9000): speech to text
with `POST /asr`, the one model the server was started with (its ASR_MODEL and ASR_ENGINE:
openai_whisper, faster_whisper or whisperx).

An OpenAI transcription request (multipart `file`, `model`, `language`, `prompt`,
`response_format`, `temperature`, `timestamp_granularities[]`) becomes

    POST /asr?task=transcribe&language=<language>&initial_prompt=<prompt>&output=<output>&encode=true
         multipart/form-data with the audio in the field `audio_file`

with `response_format` translated to the service's `output` (txt, vtt, srt, tsv, json):

    json          output=json, answered as OpenAI's {"text"} (the service's text, trimmed)
    verbose_json  output=json, answered as OpenAI's {"task", "language", "duration", "text",
                  "segments"}, plus "words" when `timestamp_granularities[]` asks for words
                  (then `word_timestamps=true`); `language` is the code the service gives
    text          output=txt; srt: output=srt; vtt: output=vtt; answered as text/plain

Anything else (`diarized_json`, ...) is refused before sending, as are what the service cannot
do and would silently drop: a `temperature` other than 0, `include[]` (logprobs),
`chunking_strategy`, `stream`. The refusal (`UnsupportedRequest`) makes the engine skip this
target with the reason. The route's `model` is not sent: the server has one model.

The service answers `text/plain` whatever the output; for json the body is read as JSON. Usage:
the audio's seconds, from the last segment's end (json), the last cue (srt, vtt) or the WAV
header.

Errors are FastAPI's: 422 `{"detail": [{"loc", "msg", "type"}]}` for a query value it does not
take (a language not in Whisper's list) or no file: CALLER_ERROR. Audio ffmpeg cannot decode
makes the service fail with a plain-text 500: FAILURE, as is any 5xx. The service has no auth;
behind a reverse proxy that wants a key, `api_key` is sent as a Bearer token, and a 401/403 is
CALLER_ERROR (a chain reads it as our credential refused).

Probe: `GET /openapi.json`. The service has no health endpoint in any version, and `/docs` is
an HTML page; FastAPI serves the OpenAPI document on every version, it costs nothing, and it
shows this is the service: its `/asr` path must be listed (else FAILURE `not_whisper_asr`).
The details are the service's title and version. Deep: `POST /detect-language` with half a
second of silence (a real, tiny call to the model). `detect_language()` is public.

Options (`ProviderConfig.options`):
    models      the model names `list_models` reports (default ["whisper"]; the server ignores it)
    encode      send `encode` (default true: the service converts any audio with ffmpeg first)
    vad_filter  send `vad_filter=true` (faster_whisper engine only; default off)
"""

from __future__ import annotations

import io
import json
import re
import wave
from collections.abc import Mapping
from typing import Any

import httpx

from providers.engine import Classification, Outcome, UnsupportedRequest, UpstreamError

from .base import Adapter, ModelInfo, Result, Usage, bad_request, malformed, wav_seconds

OUTPUTS = {"json": "json", "verbose_json": "json", "text": "txt", "srt": "srt", "vtt": "vtt"}
OPTIONS = frozenset({"models", "encode", "vad_filter"})
# The last cue's end in an SRT (00:01:02,500) or VTT (01:02.500 or 00:01:02.500) document.
_CUE_END = re.compile(r"-->\s*(?:(\d+):)?(\d{2}):(\d{2})[.,](\d{3})")


class WhisperASRAdapter(Adapter):
    kind = "whisper"
    capabilities = frozenset({"stt"})
    default_base_url = "http://127.0.0.1:9000"

    @classmethod
    def validate_options(cls, options: Mapping[str, Any]) -> None:
        """Every option this adapter reads, checked as the configuration is saved; ValueError
        naming the option (see providers/adapters/__init__.py)."""
        unknown = sorted(set(options) - OPTIONS)
        if unknown:
            raise ValueError(
                f"{unknown[0]} is not an option of whisper providers (they take: {', '.join(sorted(OPTIONS))})"
            )
        models = options.get("models")
        if models is not None and (not isinstance(models, list) or not all(isinstance(m, str) and m for m in models)):
            raise ValueError("models must be a list of names")
        for name in ("encode", "vad_filter"):
            if name in options and not isinstance(options[name], bool):
                raise ValueError(f"{name} must be true or false")

    async def transcription(
        self, request: dict[str, Any], audio: bytes, filename: str, *, model: str, timeout: float
    ) -> Result:
        response_format = str(request.get("response_format") or "json")
        output = OUTPUTS.get(response_format)
        if output is None:
            raise UnsupportedRequest(
                f"whisper-asr-webservice cannot answer response_format {response_format!r} "
                f"(it answers {', '.join(OUTPUTS)})",
                reason="unsupported_format",
            )
        words = "word" in _granularities(request)
        if words and response_format != "verbose_json":
            raise bad_request("timestamp_granularities[] needs response_format 'verbose_json'")
        _refuse_what_it_cannot_do(request)
        params = self._params(request, output, words)
        response = await self.client.post(
            f"{self.base_url}/asr",
            params=params,
            headers=self._headers(),
            files={"audio_file": (filename or "audio", audio)},
            timeout=self.timeout(timeout),
        )
        if not response.is_success:
            raise _error(response)
        if output != "json":
            text = response.content.decode("utf-8", errors="replace")
            seconds = _last_cue_end(text) if output in ("srt", "vtt") else None
            return Result(
                content=response.content,
                media_type="text/plain",
                usage=Usage(audio_seconds=seconds or wav_seconds(audio) or 0.0),
                model=model,
            )
        data = _transcript(response)
        segments = [s for s in data.get("segments") or [] if isinstance(s, dict)]
        seconds = _end_of(segments) or wav_seconds(audio) or 0.0
        text = str(data.get("text") or "").strip()
        answer: dict[str, Any] = {"text": text}
        if response_format == "verbose_json":
            answer = {
                "task": "transcribe",
                "language": data.get("language"),
                "duration": seconds,
                "text": text,
                "segments": [_segment(i, s) for i, s in enumerate(segments)],
            }
            if words:
                answer["words"] = [_word(w) for s in segments for w in s.get("words") or [] if isinstance(w, dict)]
        return Result.json(answer, usage=Usage(audio_seconds=seconds), model=model)

    async def detect_language(self, audio: bytes, filename: str = "audio.wav", *, timeout: float) -> dict[str, Any]:
        """The service's guess at the language of the first 30 s:
        {"detected_language": "english", "language_code": "en", "confidence": 0.98}."""
        response = await self.client.post(
            f"{self.base_url}/detect-language",
            params={"encode": _flag(self.config.options.get("encode", True))},
            headers=self._headers(),
            files={"audio_file": (filename, audio)},
            timeout=self.timeout(timeout),
        )
        if not response.is_success:
            raise _error(response)
        data = _transcript(response)
        if not isinstance(data.get("language_code"), str):
            raise malformed("the language detection has no language_code", response=response)
        return data

    async def list_models(self, *, timeout: float) -> list[ModelInfo]:
        names = self.config.options.get("models") or ["whisper"]
        return [ModelInfo(name=str(n), capabilities=frozenset({"stt"})) for n in names]

    async def probe(self, *, timeout: float, deep: bool = False, model: str | None = None) -> dict[str, Any]:
        response = await self.client.get(
            f"{self.base_url}/openapi.json", headers=self._headers(), timeout=self.timeout(timeout)
        )
        if not response.is_success:
            raise _error(response)
        document = _transcript(response)
        paths = document.get("paths")
        if not isinstance(paths, dict) or "/asr" not in paths:
            raise UpstreamError(
                Classification(Outcome.FAILURE, "not_whisper_asr"),
                status=response.status_code,
                message="the server's OpenAPI document has no /asr: not whisper-asr-webservice",
                body=response.content[:2000],
            )
        info = document.get("info")
        info = info if isinstance(info, dict) else {}
        details: dict[str, Any] = {
            "service": info.get("title"),
            "version": info.get("version"),
            "language_detection": "/detect-language" in paths,
        }
        if deep:
            detected = await self.detect_language(silence(0.5), timeout=timeout)
            details["detected_language"] = detected.get("language_code")
        return details

    # -- plumbing -------------------------------------------------------------------------------

    def _params(self, request: dict[str, Any], output: str, words: bool) -> dict[str, str]:
        options = self.config.options
        params = {"task": "transcribe", "output": output, "encode": _flag(options.get("encode", True))}
        language = request.get("language")
        if language:
            params["language"] = str(language).strip().lower()
        prompt = request.get("prompt")
        if prompt:
            params["initial_prompt"] = str(prompt)
        if words:
            params["word_timestamps"] = "true"
        if options.get("vad_filter"):
            params["vad_filter"] = "true"
        return params

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.config.api_key}"} if self.config.api_key else {}


def silence(seconds: float, rate: int = 16000) -> bytes:
    """A mono 16-bit WAV of silence."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(bytes(2 * int(rate * seconds)))
    return buffer.getvalue()


def _flag(value: Any) -> str:
    return "true" if value else "false"


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in ("", "false", "0", "no", "null")
    return bool(value)


def _values(request: dict[str, Any], name: str) -> list[str]:
    """A field that may come as `name` or `name[]`, one value or a list (form fields are text)."""
    values: list[str] = []
    for key in (name, f"{name}[]"):
        value = request.get(key)
        if isinstance(value, list | tuple):
            values += [str(v) for v in value]
        elif value not in (None, ""):
            values.append(str(value))
    return values


def _granularities(request: dict[str, Any]) -> set[str]:
    found = set(_values(request, "timestamp_granularities"))
    if found - {"word", "segment"}:
        raise bad_request("timestamp_granularities[] takes 'word' and 'segment'")
    return found


def _refuse_what_it_cannot_do(request: dict[str, Any]) -> None:
    temperature = request.get("temperature")
    if temperature not in (None, ""):
        try:
            value = float(temperature)
        except (TypeError, ValueError):
            raise bad_request("'temperature' must be a number from 0 to 1") from None
        if value != 0:
            raise UnsupportedRequest(
                "whisper-asr-webservice takes no sampling temperature (it decodes at 0 and falls back by itself)"
            )
    for name, what in (
        ("include", "include[] (log probabilities)"),
        ("chunking_strategy", "a chunking_strategy"),
        ("stream", "streamed transcription"),
    ):
        if any(_truthy(v) for v in _values(request, name)):
            raise UnsupportedRequest(f"whisper-asr-webservice does not do {what}")


def _transcript(response: httpx.Response) -> dict[str, Any]:
    # The service labels its JSON text/plain, so the body is read whatever the type says.
    try:
        data = json.loads(response.content)
    except ValueError as exc:
        raise malformed(f"the answer is not JSON: {exc}", response=response) from exc
    if not isinstance(data, dict):
        raise malformed("the answer is not a JSON object", response=response)
    return data


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _end_of(segments: list[dict[str, Any]]) -> float | None:
    ends = [e for e in (_number(s.get("end")) for s in segments) if e is not None]
    return max(ends) if ends else None


def _segment(index: int, segment: dict[str, Any]) -> dict[str, Any]:
    """A Whisper segment in OpenAI's verbose_json shape."""
    fields = (
        "seek",
        "start",
        "end",
        "text",
        "tokens",
        "temperature",
        "avg_logprob",
        "compression_ratio",
        "no_speech_prob",
    )
    return {"id": segment.get("id", index), **{f: segment.get(f) for f in fields}}


def _word(word: dict[str, Any]) -> dict[str, Any]:
    return {"word": str(word.get("word") or "").strip(), "start": word.get("start"), "end": word.get("end")}


def _last_cue_end(text: str) -> float | None:
    ends = _CUE_END.findall(text)
    if not ends:
        return None
    hours, minutes, seconds, millis = ends[-1]
    return int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds) + int(millis) / 1000


def _error(response: httpx.Response) -> UpstreamError:
    message = ""
    try:
        data = json.loads(response.content or b"null")
    except ValueError:
        data = None
    detail = data.get("detail") if isinstance(data, dict) else None
    if isinstance(detail, str):
        message = detail
    elif isinstance(detail, list):
        parts = []
        for item in detail[:5]:
            if isinstance(item, dict):
                loc = ".".join(str(p) for p in item.get("loc") or [] if p not in ("body", "query"))
                parts.append(f"{loc}: {item.get('msg')}" if loc else str(item.get("msg")))
        message = "; ".join(parts)
    if not message:
        message = response.content[:200].decode(errors="replace").strip() or f"HTTP {response.status_code}"
    return UpstreamError.from_response(
        response.status_code,
        response.headers,
        response.content,
        message=message,
        media_type=response.headers.get("content-type", "text/plain").split(";")[0],
    )
