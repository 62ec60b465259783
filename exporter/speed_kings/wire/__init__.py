"""Wire protocols: one module per protocol, all behind `speed_kings.probe.run_probe`."""

from __future__ import annotations

from speed_kings.wire.base import Wire


def get_wire(name: str) -> Wire:
    """The adapter for a wire protocol name (`openai`, `ollama`, `anthropic`, `gemini`)."""
    from speed_kings.wire import anthropic, gemini, ollama, openai

    wires: dict[str, Wire] = {
        "openai": openai.OpenAIWire(),
        "ollama": ollama.OllamaWire(),
        "anthropic": anthropic.AnthropicWire(),
        "gemini": gemini.GeminiWire(),
    }
    try:
        return wires[name]
    except KeyError:
        raise ValueError(
            f"unknown wire {name!r}; expected one of {', '.join(WIRE_NAMES)}"
        ) from None


WIRE_NAMES = ("openai", "ollama", "anthropic", "gemini")
