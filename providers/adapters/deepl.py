"""DeepL API v2 translation, authenticated with `Authorization: DeepL-Auth-Key <key>`.

Keys ending in ":fx" belong to the Free API at api-free.deepl.com, others to the Pro API at
api.deepl.com; with no `base_url` configured the key decides. `translate` sends
`{"text": [...], "target_lang", "source_lang"?, "formality"?}` as JSON to /v2/translate and bills
the characters DeepL reports (`billed_characters`), else the Unicode code points sent.
The upstream model may name a DeepL `model_type` ("quality_optimized", "latency_optimized",
"prefer_quality_optimized"); anything else leaves the choice to DeepL.

Errors are `{"message": ...}`: 456 (quota) is EXHAUSTED, 429 RATE_LIMITED, 403 (bad key or
wrong endpoint) and 400 CALLER_ERROR, 5xx and 529 FAILURE.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from .base import (
    Adapter,
    ModelInfo,
    ProviderConfig,
    Result,
    Usage,
    bad_request,
    json_answer,
    malformed,
)

FREE_URL = "https://api-free.deepl.com"
PRO_URL = "https://api.deepl.com"
MODEL_TYPES = frozenset({"quality_optimized", "latency_optimized", "prefer_quality_optimized"})
_PASSTHROUGH = (
    "context",
    "glossary_id",
    "preserve_formatting",
    "tag_handling",
    "split_sentences",
    "ignore_tags",
    "non_splitting_tags",
    "outline_detection",
)


class DeepLAdapter(Adapter):
    kind = "deepl"
    capabilities = frozenset({"translation"})
    default_base_url = PRO_URL

    def __init__(self, config: ProviderConfig, client: httpx.AsyncClient) -> None:
        super().__init__(config, client)
        if not config.base_url and (config.api_key or "").endswith(":fx"):
            self.base_url = FREE_URL

    async def translate(self, request: dict[str, Any], *, model: str, timeout: float) -> Result:
        raw = request.get("text")
        texts = [raw] if isinstance(raw, str) else raw
        if not texts or not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise bad_request("'text' must be a string or a non-empty list of strings")
        target = request.get("target_lang")
        if not isinstance(target, str) or not target:
            raise bad_request("'target_lang' is required")
        body: dict[str, Any] = {"text": texts, "target_lang": target.upper(), "show_billed_characters": True}
        if request.get("source_lang"):
            body["source_lang"] = str(request["source_lang"]).upper()
        formality = request.get("formality") or self.config.options.get("formality")
        if formality:
            body["formality"] = formality
        if model in MODEL_TYPES:
            body["model_type"] = model
        for name in _PASSTHROUGH:
            if request.get(name) is not None:
                body[name] = request[name]
        response = await self.client.post(
            f"{self.base_url}/v2/translate", json=body, headers=self._headers(), timeout=self.timeout(timeout)
        )
        data = json_answer(response, _message)
        translations = data.get("translations") if isinstance(data, dict) else None
        if not isinstance(translations, list) or len(translations) != len(texts):
            raise malformed("'translations' does not match the texts sent", data=data)
        billed = [t.get("billed_characters") for t in translations]
        characters = sum(billed) if all(isinstance(b, int) for b in billed) else sum(len(t) for t in texts)
        answer = {
            "translations": [
                {"text": t.get("text", ""), "detected_source_language": t.get("detected_source_language")}
                for t in translations
            ]
        }
        return Result.json(answer, usage=Usage(characters=characters), model=model or "deepl")

    async def languages(self, *, target: bool = True, timeout: float = 10.0) -> list[dict[str, Any]]:
        """DeepL's target (or source) languages: [{"language", "name", "supports_formality"?}]."""
        response = await self.client.get(
            f"{self.base_url}/v2/languages",
            params={"type": "target" if target else "source"},
            headers=self._headers(),
            timeout=self.timeout(timeout),
        )
        data = json_answer(response, _message)
        if not isinstance(data, list):
            raise malformed("/v2/languages is not a list", data=data)
        return data

    async def usage(self, *, timeout: float = 10.0) -> dict[str, Any]:
        """{"character_count", "character_limit"} for the current billing period."""
        response = await self.client.get(
            f"{self.base_url}/v2/usage", headers=self._headers(), timeout=self.timeout(timeout)
        )
        data = json_answer(response, _message)
        if not isinstance(data, dict):
            raise malformed("/v2/usage is not an object", data=data)
        return data

    async def list_models(self, *, timeout: float) -> list[ModelInfo]:
        """DeepL has one translation engine: one model, with the target languages it serves."""
        languages = await self.languages(timeout=timeout)
        return [
            ModelInfo(
                name="default",
                capabilities=frozenset({"translation"}),
                details={"target_languages": [lang.get("language") for lang in languages]},
            )
        ]

    async def probe(self, *, timeout: float, deep: bool = False, model: str | None = None) -> dict[str, Any]:
        used = await self.usage(timeout=timeout)
        count, limit = used.get("character_count"), used.get("character_limit")
        details: dict[str, Any] = {"characters_used": count, "character_limit": limit}
        if isinstance(count, int) and isinstance(limit, int):
            details["characters_left"] = max(0, limit - count)
        if deep:
            result = await self.translate({"text": "ok", "target_lang": "DE"}, model=model or "", timeout=timeout)
            details["characters"] = result.usage.characters
        return details

    # -- plumbing -----------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"DeepL-Auth-Key {self.config.api_key}"} if self.config.api_key else {}


def _message(body: bytes) -> str:
    """DeepL's `message`, with its optional `detail` after it."""
    try:
        data = json.loads(body or b"null")
    except ValueError:
        return body[:200].decode(errors="replace").strip()
    if not isinstance(data, dict) or not isinstance(data.get("message"), str):
        return ""
    detail = data.get("detail")
    return f"{data['message']} {detail}" if isinstance(detail, str) and detail else data["message"]
