"""Which models a simulated Ollama has in memory, and the bodies of its model endpoints."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from speed_kings.simulator.render_base import rfc3339

KEEP_ALIVE_SECONDS = 300  # Ollama's default: models stay loaded five minutes after use


def _details() -> dict[str, Any]:
    return {
        "parent_model": "",
        "format": "gguf",
        "family": "llama",
        "families": ["llama"],
        "parameter_size": "3.2B",
        "quantization_level": "Q4_K_M",
    }


def _digest(model: str) -> str:
    return (model.encode().hex() * 64)[:64]


class OllamaModels:
    """Loaded models per profile. A load sleeps `load_seconds` once; concurrent requests for
    the same model wait for that one load, as Ollama's scheduler does."""

    def __init__(self, monotonic: Callable[[], float], unix_time: Callable[[], float]) -> None:
        self._monotonic = monotonic
        self._unix_time = unix_time
        self._loaded: dict[tuple[str, str], float] = {}  # -> unix time of last use
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    async def ensure_loaded(self, profile: str, model: str, load_seconds: float) -> float:
        """Seconds this call spent waiting for the model to load (0.0 when it was loaded)."""
        key = (profile, model)
        if key not in self._loaded:
            began = self._monotonic()
            async with self._locks.setdefault(key, asyncio.Lock()):
                if key not in self._loaded:
                    await asyncio.sleep(load_seconds)
                    self._loaded[key] = self._unix_time()
            return self._monotonic() - began
        self._loaded[key] = self._unix_time()
        return 0.0

    def unload(self, profile: str, model: str) -> None:
        self._loaded.pop((profile, model), None)

    def ps(self, profile: str) -> dict[str, Any]:
        models = [
            {
                "name": model,
                "model": model,
                "size": 3_338_801_804,
                "digest": _digest(model),
                "details": _details(),
                "expires_at": rfc3339(used + KEEP_ALIVE_SECONDS),
                "size_vram": 3_338_801_804,
            }
            for (owner, model), used in self._loaded.items()
            if owner == profile
        ]
        return {"models": models}

    def tags(self, profile: str, default_model: str) -> dict[str, Any]:
        names = dict.fromkeys([default_model] + [m for (o, m) in self._loaded if o == profile])
        models = [
            {
                "name": name,
                "model": name,
                "modified_at": rfc3339(self._unix_time()),
                "size": 2_019_393_189,
                "digest": _digest(name),
                "details": _details(),
            }
            for name in names
        ]
        return {"models": models}
