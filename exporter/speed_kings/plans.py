"""From a validated config to what the scheduler runs: one `SeriesPlan` per
(provider, model, prompt) and one `RoundPlan` per comparison."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from speed_kings.catalog import ProviderEntry
from speed_kings.config import Comparison, Config
from speed_kings.keys import provider_status
from speed_kings.pricing import Price
from speed_kings.probe import ProbeSpec
from speed_kings.wire.base import Target


@dataclass(frozen=True, slots=True)
class SeriesPlan:
    spec: ProbeSpec
    hardware: str
    simulated: bool

    @property
    def key(self) -> tuple[str, str, str]:
        t = self.spec.target
        return (t.provider, t.model, self.spec.prompt_name)

    @property
    def price(self) -> Price | None:
        return self.spec.price

    def worst_case_cost(self) -> float | None:
        """Upper bound of one probe's cost, for the budget reservation."""
        if self.spec.price is None:
            return None
        return self.spec.price.probe_worst_case(self.spec.prompt_text, self.spec.max_tokens)


@dataclass(slots=True)
class RoundPlan:
    comparison: Comparison
    by_prompt: list[list[SeriesPlan]]  # per prompt, providers in configured order
    rounds_run: int = 0

    def next_order(self) -> list[SeriesPlan]:
        """Alternates A,B then B,A between rounds so neither side is favoured by time."""
        reverse = self.rounds_run % 2 == 1
        self.rounds_run += 1
        out: list[SeriesPlan] = []
        for plans in self.by_prompt:
            out.extend(reversed(plans) if reverse else plans)
        return out

    def worst_case_cost(self) -> float:
        return sum(p.worst_case_cost() or 0.0 for plans in self.by_prompt for p in plans)


@dataclass(slots=True)
class Plan:
    rounds: dict[str, RoundPlan] = field(default_factory=dict)
    providers: dict[str, ProviderEntry] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)  # provider -> API key (never shown)
    statuses: dict[str, str] = field(default_factory=dict)
    skipped_providers: dict[str, str] = field(default_factory=dict)  # not probed: why

    def series(self) -> list[SeriesPlan]:
        return [p for r in self.rounds.values() for plans in r.by_prompt for p in plans]


def build_plan(
    config: Config,
    providers: Mapping[str, ProviderEntry],
    environ: Mapping[str, str],
    simulated: frozenset[str] = frozenset(),
) -> Plan:
    """Resolves keys, model ids and prices. A provider without a key is not probed (said
    once in the log and on the status page), its comparisons keep the other providers."""
    plan = Plan(providers=dict(providers))
    for name, entry in providers.items():
        status = provider_status(entry, environ)
        plan.statuses[name] = status.text
        if not status.ready:
            plan.skipped_providers[name] = status.text
        elif status.key.value:
            plan.keys[name] = status.key.value
    d = config.defaults
    for comparison in config.comparisons:
        by_prompt: list[list[SeriesPlan]] = []
        for prompt in comparison.prompts:
            plans: list[SeriesPlan] = []
            for name in comparison.providers:
                if name in plan.skipped_providers:
                    continue
                entry = providers[name]
                base_url = entry.resolve_base_url(environ)
                assert base_url is not None  # provider_status checked it
                target = Target(
                    provider=name,
                    base_url=base_url,
                    wire=entry.wire,
                    model=comparison.model,
                    provider_model=entry.model_id(comparison.model),
                    api_key=plan.keys.get(name),
                    extra_body=dict(entry.extra_body),
                )
                spec = ProbeSpec(
                    target,
                    prompt,
                    config.prompt_text(prompt),
                    max_tokens=comparison.max_tokens or d.max_tokens,
                    price=entry.price(comparison.model),
                    timeout=d.timeout,
                    read_timeout=d.read_timeout,
                    connect_timeout=d.connect_timeout,
                    max_response_bytes=d.max_response_bytes,
                )
                plans.append(SeriesPlan(spec, entry.hardware, name in simulated))
            if plans:
                by_prompt.append(plans)
        if by_prompt:
            plan.rounds[comparison.name] = RoundPlan(comparison, by_prompt)
    return plan
