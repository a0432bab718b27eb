"""The client APIs the gateway speaks ("dialects"), each translated into and out of one
internal model: OpenAI's chat-completions body, completion and chunk, which every adapter
takes and returns. N client APIs and M upstream formats are N + M translators, not N × M.

Each dialect is a module of pure functions (no I/O, no state), tested on its own, gathered
in a `Dialect` (dialect.py) that the gateway's views take: `openai_chat` (the identity),
`anthropic_messages` (`POST /v1/messages`), `responses_api` (`POST /v1/responses`, made of
the pure `responses` translator). The views run every dialect through the same route
resolution, fallback chain, breakers, headers, response cache and request records; only the
two ends differ.
"""
