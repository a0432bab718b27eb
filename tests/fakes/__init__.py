"""Fake provider servers, one module per wire format. See `base` for the common frame."""

from __future__ import annotations

import importlib

from .base import FakeServer, Fault, free_port, sse

__all__ = ["FAKES", "FakeServer", "Fault", "fake_server", "free_port", "sse"]

# kind -> "module:Class"; each module is owned by the adapter of the same kind.
FAKES: dict[str, str] = {
    "openai": "tests.fakes.openai:FakeOpenAI",
    "anthropic": "tests.fakes.anthropic:FakeAnthropic",
    "ollama": "tests.fakes.ollama:FakeOllama",
    "sdwebui": "tests.fakes.sdwebui:FakeSDWebUI",
    "elevenlabs": "tests.fakes.elevenlabs:FakeElevenLabs",
    "deepl": "tests.fakes.deepl:FakeDeepL",
    "replicate": "tests.fakes.replicate:FakeReplicate",
    "pollinations": "tests.fakes.pollinations:FakePollinations",
    "stock": "tests.fakes.stock:FakeStockPhotos",
    "piper": "tests.fakes.piper:FakePiper",
    "fal": "tests.fakes.fal:FakeFal",
    "whisper": "tests.fakes.whisper_asr:FakeWhisperASR",
    "ffmpeg": "tests.fakes.ffmpeg:FakeFFmpeg",
}


def fake_server(kind: str, **kwargs: object) -> FakeServer:
    module_name, _, class_name = FAKES[kind].partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(**kwargs)
