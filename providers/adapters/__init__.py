"""Provider adapters, one module per wire format. See `base` for the contract.

`adapter_class(kind)` imports the module for a kind on first use, so loading this package
costs nothing and each adapter module stays independent of the others.
"""

from __future__ import annotations

import importlib

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
