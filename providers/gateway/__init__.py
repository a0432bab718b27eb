"""The gateway's HTTP surface: OpenAI-compatible endpoints, /api/execute, API key checks."""
