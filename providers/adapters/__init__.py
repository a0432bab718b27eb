"""Provider adapters, one module per wire format. See `base` for the contract.

`adapter_class(kind)` imports the module for a kind on first use, so loading this package
costs nothing and each adapter module stays independent of the others.

`validate_options(kind, options)` checks a provider's `options` the way every other setting is
checked, when the configuration is saved (admin, API, import) rather than when the adapter
first runs: an adapter class may declare a `validate_options(options)` classmethod raising
ValueError, with a message that starts with the option's name, for the options it reads.
(The model bounds their depth and size first, like every stored JSON value.)
"""

from __future__ import annotations

import importlib
from typing import Any

from .base import (
    CAPABILITIES,
    Adapter,
    ChatStream,
    ModelInfo,
    Price,
    ProviderConfig,
    Result,
    Unsupported,
    Usage,
)

__all__ = [
    "ADAPTER_MODULES",
    "CAPABILITIES",
    "Adapter",
    "ChatStream",
    "ModelInfo",
    "Price",
    "ProviderConfig",
    "Result",
    "Unsupported",
    "Usage",
    "adapter_class",
    "validate_options",
]

# kind -> "module:Class"
ADAPTER_MODULES: dict[str, str] = {
    "openai": "providers.adapters.openai:OpenAIAdapter",
    "anthropic": "providers.adapters.anthropic:AnthropicAdapter",
    "ollama": "providers.adapters.ollama:OllamaAdapter",
    "sdwebui": "providers.adapters.sdwebui:SDWebUIAdapter",
    "elevenlabs": "providers.adapters.elevenlabs:ElevenLabsAdapter",
    "deepl": "providers.adapters.deepl:DeepLAdapter",
    "simulated": "providers.adapters.simulated:SimulatedAdapter",
    "replicate": "providers.adapters.replicate:ReplicateAdapter",
    "pollinations": "providers.adapters.pollinations:PollinationsAdapter",
    "stock": "providers.adapters.stock:StockPhotoAdapter",
    "piper": "providers.adapters.piper:PiperAdapter",
    "fal": "providers.adapters.fal:FalAdapter",
    "whisper": "providers.adapters.whisper_asr:WhisperASRAdapter",
    "ffmpeg": "providers.adapters.ffmpeg:FFmpegAdapter",
}

_classes: dict[str, type[Adapter]] = {}


def adapter_class(kind: str) -> type[Adapter]:
    """The adapter class for a provider kind; KeyError for an unknown kind."""
    cls = _classes.get(kind)
    if cls is None:
        module_name, _, class_name = ADAPTER_MODULES[kind].partition(":")
        cls = getattr(importlib.import_module(module_name), class_name)
        _classes[kind] = cls
    return cls


def validate_options(kind: str, options: Any) -> None:
    """Refuse `options` a provider of `kind` cannot run with: ValueError naming the option."""
    if not isinstance(options, dict):
        raise ValueError("must be a mapping")
    if kind not in ADAPTER_MODULES:
        return  # the kind itself is refused, with its own message
    check = getattr(adapter_class(kind), "validate_options", None)
    if check is not None:
        check(options)
