"""Simulated providers for demo mode: every wire protocol, named `sim-*` so nobody mistakes
them for real ones. Each borrows its real counterpart's hardware class and prices so costs
look plausible; nothing is spent."""

from __future__ import annotations

from dataclasses import dataclass

from speed_kings.catalog import Catalog
from speed_kings.pricing import Price
from speed_kings.wire.base import Target

# The path after the simulator's /{profile} prefix that a wire's base URL ends with.
WIRE_BASE_SUFFIX = {"openai": "/v1", "anthropic": "/v1", "gemini": "/v1beta", "ollama": ""}


@dataclass(frozen=True, slots=True)
class DemoProvider:
    name: str
    profile: str  # simulator profile
    wire: str
    counterpart: str  # catalog provider it imitates
    model: str  # canonical model


DEMO_PROVIDERS: tuple[DemoProvider, ...] = (
    DemoProvider("sim-cerebras", "cerebras", "openai", "cerebras", "llama-3.3-70b"),
    DemoProvider("sim-groq", "groq", "openai", "groq", "llama-3.3-70b"),
    DemoProvider("sim-deepseek", "deepseek", "openai", "deepseek", "deepseek-v3"),
    DemoProvider("sim-anthropic", "anthropic", "anthropic", "anthropic", "claude-haiku-4-5"),
    DemoProvider("sim-gemini", "gemini", "gemini", "gemini", "gemini-2.5-flash"),
    DemoProvider("sim-ollama", "ollama", "ollama", "ollama", "llama-3.1-8b"),
)


@dataclass(frozen=True, slots=True)
class DemoTarget:
    target: Target
    hardware: str
    price: Price | None


def demo_targets(simulator_url: str, catalog: Catalog) -> list[DemoTarget]:
    out = []
    for demo in DEMO_PROVIDERS:
        real = catalog.get(demo.counterpart)
        target = Target(
            provider=demo.name,
            base_url=f"{simulator_url}/{demo.profile}{WIRE_BASE_SUFFIX[demo.wire]}",
            wire=demo.wire,
            model=demo.model,
            provider_model=real.model_id(demo.model),
            api_key="sim-demo-key" if demo.wire != "ollama" else None,
        )
        out.append(DemoTarget(target, real.hardware, real.price(demo.model)))
    return out
