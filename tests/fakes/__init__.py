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
    # `openai` kind servers with a model list of their own shape, prices included
    "openrouter": "tests.fakes.openrouter:FakeOpenRouter",
    "together": "tests.fakes.together:FakeTogether",
}

# What a fake needs that it has no default for, when it is started by name (`python -m tests.fakes`).
DEFAULTS: dict[str, dict[str, object]] = {
    "openrouter": {
        "prices": {
            "openai/o3-mini": {"prompt": "0.0000011", "completion": "0.0000044"},
            "meta-llama/llama-3.3-70b-instruct": {"prompt": "0.00000013", "completion": "0.0000004"},
            "google/gemma-3-27b-it:free": {"prompt": "0", "completion": "0"},
            "openrouter/auto": {"prompt": "-1", "completion": "-1"},
        }
    },
    "together": {
        "prices": {
            "meta-llama/Llama-3.3-70B-Instruct-Turbo": {"input": 0.88, "output": 0.88},
            "black-forest-labs/FLUX.1-schnell": {"input": 0, "output": 0},
        },
        "types": {"black-forest-labs/FLUX.1-schnell": "image"},
    },
}


def fake_server(kind: str, **kwargs: object) -> FakeServer:
    module_name, _, class_name = FAKES[kind].partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(**{**DEFAULTS.get(kind, {}), **kwargs})
