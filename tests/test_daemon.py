"""The daemon in-process, over real loopback HTTP: scheduler -> probes against the simulator
-> metrics, budget, cooldowns, reload. Real parts throughout; only the config is built in
code instead of read from a file."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import itertools
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from speed_kings.catalog import Catalog, load_catalog
from speed_kings.clock import SystemClock
from speed_kings.config import Config, ConfigError, parse_config
from speed_kings.daemon import Daemon, DaemonOptions
from speed_kings.logs import make_logger
from speed_kings.simulator import PROFILES, Simulator

KEY = "sk-daemon-test-key-0123456789abcdef"
PRICE = {"input": 100.0, "output": 100.0, "checked": "2026-11-22", "source": "test"}


def provider(sim: Simulator, profile: str, price: dict[str, Any] | None = PRICE) -> dict[str, Any]:
    model: dict[str, Any] = {"id": "m"}
    if price is not None:
        model["price"] = price
    return {
        "base_url": f"{sim.url}/{profile}/v1",
        "wire": "openai",
        "hardware": "GPU",
        "api_key_env": "TEST_KEY",
        "models": {"m": model},
    }


def comparison(name: str, providers: list[str], interval: str = "1s") -> dict[str, Any]:
    return {
        "name": name,
        "model": "m",
        "providers": providers,
        "schedule": {"interval": interval},
        "max_tokens": 20,
    }


@dataclasses.dataclass
class Running:
    daemon: Daemon
    sim: Simulator
    registry: CollectorRegistry
    log: io.StringIO

    def sample(self, name: str, **labels: str) -> float | None:
        self.daemon.render_metrics()  # refreshes budget and cooldown gauges, as a scrape does
        return self.registry.get_sample_value(name, labels)

    async def until(self, predicate: Callable[[], bool], timeout: float = 30.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not predicate():
            assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
            await asyncio.sleep(0.05)

    def probes(self) -> list[dict[str, Any]]:
        return self.daemon.snapshot().recent_probes


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    fast = dataclasses.replace(PROFILES["fast"], ttft_seconds=0.02, output_tokens=20)
    profiles = {
        "fast": fast,
        "fast2": dataclasses.replace(fast, name="fast2"),
        "slow": dataclasses.replace(fast, name="slow", ttft_seconds=0.2),
    }
    simulator = Simulator(profiles, seed=9)
    await simulator.start()
    yield simulator
    await simulator.stop()


@pytest.fixture
def catalog() -> Catalog:
    return load_catalog()


Starter = Callable[..., Any]


@pytest.fixture
async def start(sim: Simulator, catalog: Catalog, tmp_path: Path) -> AsyncIterator[Starter]:
    """Starts daemons on the given config data; stops them (gracefully) after the test."""
    started: list[Daemon] = []

    async def _start(
        data: dict[str, Any], reload_with: Callable[[], Config] | None = None
    ) -> Running:
        config = parse_config(
            {"state_dir": str(tmp_path / "state"), **data}, "<test>", catalog=catalog
        )
        registry = CollectorRegistry()
        log = io.StringIO()
        daemon = Daemon(
            load_config=lambda: ((reload_with or (lambda: config))(), catalog),
            config=config,
            catalog=catalog,
            clock=SystemClock(),
            registry=registry,
            logger=make_logger(fmt="json", stream=log),
            environ={"TEST_KEY": KEY},
            options=DaemonOptions(config_path="<test>", state_dir=tmp_path / "state"),
        )
        await daemon.start()
        started.append(daemon)
        return Running(daemon, sim, registry, log)

    yield _start
    for daemon in started:
        await daemon.stop()


async def test_scheduled_probes_export_what_the_simulator_sent(
    sim: Simulator, start: Starter
) -> None:
    run = await start(
        {
            "providers": {"vllm": provider(sim, "fast")},
            "comparisons": [comparison("solo", ["vllm"])],
        }
    )
    await run.until(lambda: len(run.probes()) >= 3)
    labels = {"provider": "vllm", "model": "m", "prompt": "short"}
    # Count and sums from /metrics at one instant, against the probes recorded so far.
    probes = run.probes()
    successes = [p for p in probes if p["outcome"] == "success"]
    assert run.sample("speedkings_probes_total", **labels, outcome="success") == len(successes)
    truths = [sim.truth(p["request_id"]) for p in successes]
    assert all(t is not None for t in truths)
    ttft_sum = run.sample("speedkings_time_to_first_token_seconds_sum", **labels)
    true_sum = sum(t.ttft_seconds for t in truths if t)  # type: ignore[misc]
    assert ttft_sum is not None and abs(ttft_sum - true_sum) <= 0.010 * len(truths)
    output = run.sample("speedkings_tokens_total", provider="vllm", model="m", direction="output")
    assert output == sum(t.output_tokens for t in truths if t)
    assert run.sample("speedkings_probe_success", **labels) == 1
    assert KEY not in run.log.getvalue()
    assert '"event": "probe"' in run.log.getvalue()
    # What a scrape serves (cached, in chunks) is what the registry would print.
    chunks, _ = run.daemon.render_metrics()
    served = b"".join(chunks)
    assert served == generate_latest(run.registry)
    assert (
        b'speedkings_probes_total{model="m",outcome="success",prompt="short",provider="vllm"}'
        in served
    )


async def test_rounds_alternate_a_b_then_b_a(sim: Simulator, start: Starter) -> None:
    run = await start(
        {
            "providers": {"a": provider(sim, "fast"), "b": provider(sim, "fast2")},
            "comparisons": [comparison("ab", ["a", "b"])],
        }
    )
    await run.until(lambda: len(run.probes()) >= 6)
    order = [p["provider"] for p in reversed(run.probes())][:6]
    assert order == ["a", "b", "b", "a", "a", "b"]


async def test_one_provider_is_never_probed_twice_at_once(sim: Simulator, start: Starter) -> None:
    run = await start(
        {
            "concurrency": 4,
            "providers": {"a": provider(sim, "fast"), "b": provider(sim, "fast2")},
            "comparisons": [comparison(f"c{i}", ["a", "b"]) for i in range(3)],
        }
    )
    await run.until(lambda: sum(p["provider"] == "a" for p in run.probes()) >= 8)
    for profile in ("fast", "fast2"):
        sent = sorted(
            (t for t in sim.truths() if t.profile == profile), key=lambda t: t.received_at
        )
        for earlier, later in itertools.pairwise(sent):
            assert earlier.finished_at is not None
            assert later.received_at >= earlier.finished_at, f"{profile}: probes overlapped"
    # With concurrency 4, the two providers did run at the same time.
    a = [t for t in sim.truths() if t.profile == "fast"]
    b = [t for t in sim.truths() if t.profile == "fast2"]
    assert any(
        x.received_at < (y.finished_at or 0) and y.received_at < (x.finished_at or 0)
        for x in a
        for y in b
    )


async def test_budget_cap_holds_and_skips_are_counted(sim: Simulator, start: Starter) -> None:
    # Worst case per probe: (prompt chars + template) * $100/M + 20 * $100/M, about $0.02.
    run = await start(
        {
            "concurrency": 3,
            "providers": {"a": provider(sim, "fast"), "b": provider(sim, "fast2")},
            "comparisons": [comparison("ab", ["a", "b"], "1s")],
            "budget": {"global": {"daily": 0.1}},
        }
    )
    skipped = {"provider": "a", "model": "m", "prompt": "short", "outcome": "skipped_budget"}
    await run.until(lambda: (run.sample("speedkings_probes_total", **skipped) or 0) >= 1, 60)
    spent = run.sample("speedkings_budget_spent_dollars", scope="global", period="day")
    limit = run.sample("speedkings_budget_limit_dollars", scope="global", period="day")
    assert limit == 0.1 and spent is not None and 0 < spent <= 0.1
    costs = sum(p["cost_usd"] or 0 for p in run.probes() if p["outcome"] == "success")
    assert costs <= 0.1
    skips = [p for p in run.probes() if p["outcome"] == "skipped_budget"]
    assert "budget cap" in skips[0]["error"]


async def test_unknown_price_under_a_cap_is_skipped_not_spent_blind(
    sim: Simulator, start: Starter
) -> None:
    run = await start(
        {
            "providers": {"a": provider(sim, "fast", price=None)},
            "comparisons": [comparison("a", ["a"])],
            "budget": {"global": {"monthly": 1.0}},
        }
    )
    await run.until(lambda: len(run.probes()) >= 1)
    [first, *_] = run.probes()
    assert first["outcome"] == "skipped_budget" and "no price" in first["error"]


async def test_rate_limit_starts_a_cooldown(sim: Simulator, start: Starter) -> None:
    entry = provider(sim, "fast")
    entry["base_url"] = f"{sim.url}/fast@rate_limit/v1"
    run = await start(
        {
            "providers": {"a": entry},
            "comparisons": [comparison("a", ["a"])],
            "rate_limits": {"backoff_initial": "30s", "backoff_max": "1h"},
        }
    )
    await run.until(lambda: any(p["outcome"] == "skipped_cooldown" for p in run.probes()), 20)
    outcomes = [p["outcome"] for p in reversed(run.probes())]
    assert outcomes[0] == "rate_limited" and set(outcomes[1:]) == {"skipped_cooldown"}
    until = run.sample("speedkings_provider_cooldown_until_timestamp_seconds", provider="a")
    assert until is not None and until > SystemClock().time() + 20  # max(Retry-After 7 s, 30 s)
    assert run.sample("speedkings_rate_limit_events_total", provider="a", kind="rate_limited") == 1
    [cooldown] = run.daemon.snapshot().cooldowns
    assert cooldown.provider == "a" and "429" in cooldown.reason
    assert len(sim.truths()) == 1  # nothing was sent while cooling down


async def test_provider_without_key_is_reported_not_probed(sim: Simulator, start: Starter) -> None:
    missing = provider(sim, "fast2")
    missing["api_key_env"] = "ABSENT_KEY"
    run = await start(
        {
            "providers": {"a": provider(sim, "fast"), "nokey": missing},
            "comparisons": [comparison("both", ["a", "nokey"])],
        }
    )
    await run.until(lambda: len(run.probes()) >= 2)
    assert {p["provider"] for p in run.probes()} == {"a"}
    rows = {r.name: r for r in run.daemon.snapshot().providers}
    assert not rows["nokey"].probed and "ABSENT_KEY" in rows["nokey"].status
    assert run.log.getvalue().count('"event": "provider_not_probed"') == 1


async def test_reload_keeps_old_config_when_new_one_is_invalid(
    sim: Simulator, start: Starter, catalog: Catalog
) -> None:
    data = {"providers": {"a": provider(sim, "fast")}, "comparisons": [comparison("a", ["a"])]}
    current: dict[str, Any] = {"data": data}

    def load() -> Config:
        return parse_config(current["data"], "<test>", catalog=catalog)

    run = await start(data, reload_with=load)
    current["data"] = {**data, "surprise": 1}
    ok, message = await run.daemon.reload()
    assert not ok and "surprise" in message
    assert run.sample("speedkings_config_last_reload_successful") == 0
    count = len(run.probes())
    await run.until(lambda: len(run.probes()) > count)  # the old config keeps probing
    current["data"] = {
        "providers": {"a": provider(sim, "fast"), "b": provider(sim, "fast2")},
        "comparisons": [comparison("ab", ["a", "b"])],
    }
    ok, message = await run.daemon.reload()
    assert ok, message
    assert run.sample("speedkings_config_last_reload_successful") == 1
    await run.until(lambda: any(p["provider"] == "b" for p in run.probes()))
    assert (
        run.sample(
            "speedkings_provider_info",
            provider="b",
            hardware="GPU",
            wire="openai",
            simulated="false",
        )
        == 1
    )
    with pytest.raises(ConfigError):
        parse_config({**data, "surprise": 1}, "<test>", catalog=catalog)


async def test_throttling_is_flagged_against_the_series_baseline(
    sim: Simulator, start: Starter, catalog: Catalog
) -> None:
    base = {
        "throttling": {"factor": 3.0, "window": 10, "min_samples": 3},
        "comparisons": [comparison("a", ["a"])],
    }
    current: dict[str, Any] = {"data": {**base, "providers": {"a": provider(sim, "fast")}}}

    def load() -> Config:
        return parse_config(current["data"], "<test>", catalog=catalog)

    run = await start(current["data"], reload_with=load)
    await run.until(lambda: len(run.probes()) >= 3)
    labels = {"provider": "a", "model": "m", "prompt": "short", "signal": "ttft"}
    assert run.sample("speedkings_throttling_events_total", **labels) == 0
    # Same series, now served 10x slower (TTFT 0.2 s against a 0.02 s baseline).
    current["data"] = {**base, "providers": {"a": provider(sim, "slow")}}
    ok, message = await run.daemon.reload()
    assert ok, message
    await run.until(lambda: (run.sample("speedkings_throttling_events_total", **labels) or 0) >= 1)
    assert '"event": "throttling"' in run.log.getvalue()


async def test_unusable_state_dir_pauses_paid_providers_only(
    sim: Simulator, catalog: Catalog, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    free = provider(sim, "fast2", price={**PRICE, "input": 0.0, "output": 0.0})
    config = parse_config(
        {
            "state_dir": str(blocker / "state"),
            "providers": {"paid": provider(sim, "fast"), "free": free},
            "comparisons": [comparison("both", ["paid", "free"])],
        },
        "<test>",
        catalog=catalog,
    )
    log = io.StringIO()
    daemon = Daemon(
        load_config=lambda: (config, catalog),
        config=config,
        catalog=catalog,
        clock=SystemClock(),
        registry=CollectorRegistry(),
        logger=make_logger(fmt="json", stream=log),
        environ={"TEST_KEY": KEY},
        options=DaemonOptions(config_path="<test>", state_dir=blocker / "state"),
    )
    await daemon.start()
    try:
        run = Running(daemon, sim, CollectorRegistry(), log)
        await run.until(lambda: len(run.probes()) >= 4)
    finally:
        await daemon.stop()
    by_provider = {p["provider"]: p for p in run.probes()}
    assert by_provider["paid"]["outcome"] == "skipped_budget"
    assert "paid providers paused" in by_provider["paid"]["error"]
    assert by_provider["free"]["outcome"] == "success"
    assert '"event": "ledger_unavailable"' in log.getvalue()
    assert {t.profile for t in sim.truths()} == {"fast2"}  # nothing was sent to the paid one
