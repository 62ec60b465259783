"""The ad-hoc benchmark behind `speed-kings probe`: warm-up, iterations, summaries."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from speed_kings.clock import Clock
from speed_kings.probe import ProbeSpec, run_probe
from speed_kings.redact import Redactor
from speed_kings.result import Outcome, ProbeResult
from speed_kings.stats import percentile

# ProbeResult attributes summarised with p50/p95, named as in the JSON output.
SUMMARY_FIELDS: tuple[tuple[str, str], ...] = (
    ("time_to_headers", "time_to_headers_seconds"),
    ("time_to_first_token", "time_to_first_token_seconds"),
    ("time_to_first_answer_token", "time_to_first_answer_token_seconds"),
    ("request_duration", "request_duration_seconds"),
    ("output_tokens_per_second", "output_tokens_per_second"),
    ("time_per_output_token", "time_per_output_token_seconds"),
)


@dataclass(slots=True)
class BenchGroup:
    """All runs of one provider, model and prompt."""

    spec: ProbeSpec
    hardware: str | None = None
    runs: list[ProbeResult] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        ok = [r for r in self.runs if r.outcome is Outcome.SUCCESS]
        out: dict[str, Any] = {
            "runs": len(self.runs),
            "successes": len(ok),
            "outcomes": dict(Counter(r.outcome.value for r in self.runs)),
        }
        for attr, name in SUMMARY_FIELDS:
            values = [v for r in ok if (v := getattr(r, attr)) is not None]
            out[name] = {"p50": percentile(values, 50), "p95": percentile(values, 95)}
        loads = [r.model_load_seconds for r in self.runs if r.model_load_seconds is not None]
        out["model_load_seconds"] = max(loads) if loads else None
        costs = [r.cost_usd for r in self.runs if r.cost_usd is not None]
        out["cost_usd_total"] = sum(costs) if costs else None
        out["tokens_estimated"] = any(r.tokens.source == "estimated" for r in ok)
        return out


def worst_case_cost(groups: Sequence[BenchGroup], runs_each: int) -> float | None:
    """Upper bound of what the benchmark can spend; None when a price is unknown."""
    total = 0.0
    for group in groups:
        spec = group.spec
        if spec.price is None:
            return None
        total += spec.price.probe_worst_case(spec.prompt_text, spec.max_tokens) * runs_each
    return total


ProgressFn = Callable[[BenchGroup, ProbeResult, bool], None]


async def run_benchmark(
    groups: Sequence[BenchGroup],
    *,
    iterations: int,
    warmup: int,
    session: aiohttp.ClientSession,
    clock: Clock,
    redactor: Redactor,
    progress: ProgressFn | None = None,
    probe: Callable[..., Awaitable[ProbeResult]] = run_probe,
) -> None:
    """Runs probes one at a time. Each round visits every group; odd rounds go in reverse
    order (A,B then B,A) so no provider is favoured by when it runs."""
    for index in range(warmup + iterations):
        order = groups if index % 2 == 0 else list(reversed(groups))
        recording = index >= warmup
        for group in order:
            result = await probe(group.spec, session, clock, redactor=redactor)
            if recording:
                group.runs.append(result)
            if progress:
                progress(group, result, recording)
