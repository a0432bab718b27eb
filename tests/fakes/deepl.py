"""A fake DeepL API v2, authenticated with `Authorization: DeepL-Auth-Key <key>`.

`/v2/translate` takes JSON (or the legacy form encoding) and answers
`{"translations": [{"detected_source_language", "text"[, "billed_characters"]}]}`; characters
are counted in Unicode code points against the account's limit, and going past it is DeepL's
456 "Quota Exceeded". Errors are DeepL's `{"message": ...}` bodies: 400 for a bad parameter,
403 for a bad key (or a free key on the Pro endpoint), 429 and 529 when throttled, 456 quota.
`free=True` makes the fake the Free endpoint, which only takes keys ending in ":fx".
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .base import FakeServer, Fault

SOURCE = {
    "BG": "Bulgarian",
    "DE": "German",
    "EN": "English",
    "ES": "Spanish",
    "FR": "French",
    "IT": "Italian",
    "JA": "Japanese",
    "NL": "Dutch",
    "PL": "Polish",
    "PT": "Portuguese",
}
TARGET = {
    "BG": ("Bulgarian", False),
    "DE": ("German", True),
    "EN-GB": ("English (British)", False),
    "EN-US": ("English (American)", False),
    "ES": ("Spanish", True),
    "FR": ("French", True),
    "IT": ("Italian", True),
    "JA": ("Japanese", True),
    "NL": ("Dutch", True),
    "PL": ("Polish", True),
    "PT-BR": ("Portuguese (Brazilian)", True),
}
PHRASES = {
    ("hello, world!", "DE"): "Hallo, Welt!",
    ("hello, world!", "FR"): "Bonjour, le monde !",
    ("good morning", "DE"): "Guten Morgen",
    ("hallo, welt!", "EN-US"): "Hello, world!",
}
_MESSAGES = {
    400: "Bad request.",
    403: "Forbidden",
    404: "Not found",
    413: "Request Entity Too Large",
    429: "Too many requests",
    456: "Quota Exceeded",
    500: "Internal server error",
    503: "Service unavailable",
    529: "Too many requests",
}


def _message(message: str, detail: str | None = None) -> dict[str, Any]:
    return {"message": message, **({"detail": detail} if detail else {})}


class FakeDeepL(FakeServer):
    kind = "deepl"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        api_key: str = "deepl-test-key:fx",
        free: bool = True,
        character_limit: int = 500_000,
    ) -> None:
        super().__init__(host, port)
        self.api_key = api_key
        self.free = free
        self.character_limit = self._initial_limit = character_limit
        self.character_count = 0

    def reset(self) -> None:
        super().reset()
        self.character_limit = self._initial_limit
        self.character_count = 0

    def build_app(self) -> web.Application:
        app = super().build_app()
        app.middlewares.append(self._check_key)
        return app

    @web.middleware
    async def _check_key(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith("/v2/"):
            header = request.headers.get("Authorization", "")
            key = header.removeprefix("DeepL-Auth-Key ").strip() if header.startswith("DeepL-Auth-Key ") else None
            if key is not None and key.endswith(":fx") != self.free:
                other = "https://api-free.deepl.com" if key.endswith(":fx") else "https://api.deepl.com"
                return web.json_response(_message(f"Wrong endpoint. Use {other}"), status=403)
            if key != self.api_key:
                return web.json_response(_message("Forbidden"), status=403)
        return await handler(request)

    def error_body(self, status: int, fault: Fault) -> dict[str, Any]:
        return _message(_MESSAGES.get(status, "Internal server error"), fault.error_code)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v2/translate", self.translate)
        app.router.add_route("*", "/v2/languages", self.languages)
        app.router.add_route("*", "/v2/usage", self.usage)

    async def translate(self, request: web.Request) -> web.Response:
        if request.content_type == "application/json":
            try:
                data = await request.json()
            except ValueError:
                return web.json_response(_message("Bad request. Reason: invalid JSON"), status=400)
        else:
            form = await request.post()
            data = {k: form.getall(k) if k == "text" else form.get(k) for k in form}
        if not isinstance(data, dict):
            return web.json_response(_message("Bad request."), status=400)
        texts = data.get("text")
        if isinstance(texts, str):
            texts = [texts]
        if not texts or not all(isinstance(t, str) for t in texts):
            return web.json_response(_message("Parameter 'text' not specified."), status=400)
        target = str(data.get("target_lang") or "").upper()
        if not target:
            return web.json_response(_message("Parameter 'target_lang' not specified."), status=400)
        if target in ("EN", "PT"):
            return web.json_response(
                _message(
                    "Value for 'target_lang' not supported.",
                    f"targetLang='{target.lower()}' is deprecated, please use "
                    + ("'en-GB' or 'en-US'" if target == "EN" else "'pt-PT' or 'pt-BR'")
                    + " instead.",
                ),
                status=400,
            )
        if target not in TARGET:
            return web.json_response(_message("Value for 'target_lang' not supported."), status=400)
        source = str(data.get("source_lang") or "").upper() or None
        if source and source not in SOURCE:
            return web.json_response(_message("Value for 'source_lang' not supported."), status=400)
        formality = data.get("formality")
        if formality not in (None, "default", "prefer_more", "prefer_less") and not TARGET[target][1]:
            return web.json_response(_message("'formality' is not supported for given 'target_lang'."), status=400)
        characters = sum(len(t) for t in texts)
        if self.character_count + characters > self.character_limit:
            return web.json_response(_message("Quota Exceeded"), status=456)
        self.character_count += characters
        billed = data.get("show_billed_characters") in (True, "1", "true")
        translations = []
        for text in texts:
            item: dict[str, Any] = {
                "detected_source_language": source or ("DE" if text.lower().startswith("hallo") else "EN"),
                "text": PHRASES.get((text.lower(), target), f"[{target}] {text}"),
            }
            if billed:
                item["billed_characters"] = len(text)
            translations.append(item)
        return web.json_response({"translations": translations})

    async def languages(self, request: web.Request) -> web.Response:
        if request.query.get("type", "source") == "target":
            return web.json_response(
                [
                    {"language": code, "name": name, "supports_formality": formal}
                    for code, (name, formal) in TARGET.items()
                ]
            )
        return web.json_response([{"language": code, "name": name} for code, name in SOURCE.items()])

    async def usage(self, request: web.Request) -> web.Response:
        return web.json_response({"character_count": self.character_count, "character_limit": self.character_limit})
