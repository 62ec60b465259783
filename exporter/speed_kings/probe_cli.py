"""`speed-kings probe`: the seed's one-shot benchmark, kept for ad-hoc measurements."""

from __future__ import annotations

import asyncio
import os
import platform
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import click

from speed_kings import __version__
from speed_kings.bench import BenchGroup, run_benchmark, worst_case_cost
from speed_kings.catalog import Catalog, load_catalog
from speed_kings.clock import SystemClock
from speed_kings.demo import demo_targets
from speed_kings.http import make_session
from speed_kings.keys import provider_status, resolve_api_key
from speed_kings.output import FORMATS, render
from speed_kings.pricing import Price
from speed_kings.probe import ProbeSpec
from speed_kings.prompts import resolve_prompt
from speed_kings.redact import Redactor
from speed_kings.result import Outcome, ProbeResult
from speed_kings.simulator import Simulator
from speed_kings.wire import WIRE_NAMES
from speed_kings.wire.base import Target


@dataclass(frozen=True, slots=True)
class _Resolved:
    target: Target
    hardware: str | None = None
    price: Price | None = None


def _targets(
    catalog: Catalog,
    providers: tuple[str, ...],
    base_url: str | None,
    wire: str | None,
    model: str | None,
    key_env: str,
    environ: Mapping[str, str],
) -> list[_Resolved]:
    if base_url:
        if providers:
            raise click.UsageError("use either --provider or --base-url, not both")
        if not wire:
            raise click.UsageError("--base-url needs --wire (openai, ollama, anthropic, gemini)")
        if not model:
            raise click.UsageError("--base-url needs --model (the model id the server expects)")
        key = resolve_api_key([key_env], environ)
        if key.problem:
            raise click.UsageError(key.problem)
        target = Target("custom", base_url.rstrip("/"), wire, model, model, api_key=key.value)
        return [_Resolved(target)]
    if not providers:
        raise click.UsageError(
            "name a provider with --provider NAME, or an endpoint with --base-url URL --wire WIRE"
        )
    if wire:
        raise click.UsageError("--wire goes with --base-url; a catalog provider has its own wire")
    out: list[_Resolved] = []
    for name in providers:
        try:
            entry = catalog.get(name)
        except KeyError as exc:
            raise click.UsageError(str(exc.args[0])) from None
        status = provider_status(entry, environ)
        if not status.ready:
            raise click.UsageError(f"provider {name!r}: {status.text}")
        url = entry.resolve_base_url(environ)
        assert url is not None  # provider_status checked it
        canonical = model or entry.default_model
        target = Target(
            name,
            url,
            entry.wire,
            canonical,
            entry.model_id(canonical),
            api_key=status.key.value,
            extra_body=dict(entry.extra_body),
        )
        out.append(_Resolved(target, entry.hardware, entry.price(canonical)))
    return out


def _progress(group: BenchGroup, result: ProbeResult, recording: bool) -> None:
    ttft = result.time_to_first_token
    tps = result.output_tokens_per_second
    parts = [
        "run" if recording else "warmup",
        group.spec.target.provider,
        result.outcome.value,
        f"ttft={ttft * 1000:.0f}ms" if ttft is not None else "ttft=-",
        f"tok/s={tps:.0f}" if tps is not None else "tok/s=-",
    ]
    if result.error:
        parts.append(f"error={result.error}")
    click.echo("  ".join(parts), err=True)


@click.command()
@click.option(
    "--provider",
    "providers",
    multiple=True,
    metavar="NAME",
    help="Catalog provider to probe; repeat to compare (runs alternate A,B then B,A).",
)
@click.option("--base-url", metavar="URL", help="Any endpoint instead of a catalog provider.")
@click.option("--wire", type=click.Choice(WIRE_NAMES), help="Wire protocol of --base-url.")
@click.option(
    "--api-key-env",
    default="CUSTOM_API_KEY",
    show_default=True,
    metavar="VAR",
    help="Env var holding the key for --base-url (VAR_FILE also works).",
)
@click.option("--model", help="Canonical model name (mapped per provider) or a raw model id.")
@click.option(
    "--prompt",
    default="short",
    show_default=True,
    help="short, medium, long, or the prompt text itself.",
)
@click.option("--max-tokens", type=click.IntRange(1, 100_000), default=300, show_default=True)
@click.option("--iterations", type=click.IntRange(1, 1000), default=3, show_default=True)
@click.option(
    "--warmup",
    type=click.IntRange(0, 100),
    default=0,
    show_default=True,
    help="Unrecorded runs before measuring.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(0.1, 3600),
    default=60.0,
    show_default=True,
    help="Seconds allowed for one request, headers to end of stream.",
)
@click.option(
    "--read-timeout",
    type=click.FloatRange(0.1, 3600),
    default=None,
    help="Longest silence mid-stream before giving up (default: --timeout).",
)
@click.option(
    "--reuse-connections",
    is_flag=True,
    help="Keep connections open between runs (default: a fresh connection per probe).",
)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option(
    "--catalog",
    "catalog_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Provider catalog file (default: the built-in one).",
)
@click.option("--yes", "-y", is_flag=True, help="Skip the cost confirmation.")
@click.option(
    "--demo",
    is_flag=True,
    help="Probe the built-in simulated providers (sim-*) over loopback; no key needed.",
)
def probe_command(
    providers: tuple[str, ...],
    base_url: str | None,
    wire: str | None,
    api_key_env: str,
    model: str | None,
    prompt: str,
    max_tokens: int,
    iterations: int,
    warmup: int,
    timeout: float,
    read_timeout: float | None,
    reuse_connections: bool,
    fmt: str,
    catalog_path: Path | None,
    yes: bool,
    demo: bool,
) -> None:
    """Benchmark one or more providers now and print p50/p95 summaries."""
    environ = dict(os.environ)
    catalog = load_catalog(catalog_path)
    prompt_name, prompt_text = resolve_prompt(prompt)

    def groups_for(resolved: list[_Resolved]) -> list[BenchGroup]:
        return [
            BenchGroup(
                ProbeSpec(
                    r.target,
                    prompt_name,
                    prompt_text,
                    max_tokens=max_tokens,
                    price=r.price,
                    timeout=timeout,
                    read_timeout=read_timeout or timeout,
                ),
                hardware=r.hardware,
            )
            for r in resolved
        ]

    runs_each = iterations + warmup
    if demo:
        if providers or base_url:
            raise click.UsageError(
                "--demo probes the simulated providers; drop --provider/--base-url"
            )
        click.echo("Demo: simulated providers (sim-*) on loopback; nothing is spent.", err=True)
        groups: list[BenchGroup] = []
    else:
        resolved = _targets(catalog, providers, base_url, wire, model, api_key_env, environ)
        groups = groups_for(resolved)
        estimate = worst_case_cost(groups, runs_each)
        total_runs = runs_each * len(groups)
        if estimate is None:
            click.echo(
                f"Estimated cost: unknown (no price for some model), {total_runs} runs.", err=True
            )
        else:
            click.echo(f"Estimated cost: at most ${estimate:.6f} for {total_runs} runs.", err=True)
        if not yes and estimate != 0:
            if not sys.stdin.isatty():
                raise click.UsageError(
                    "spending needs confirmation: pass --yes to run without a prompt"
                )
            click.confirm("Proceed?", abort=True, err=True)
    redactor = Redactor([g.spec.target.api_key for g in groups if g.spec.target.api_key])
    started = datetime.now(UTC)

    async def main() -> None:
        clock = SystemClock()
        simulator = Simulator(clock=clock) if demo else None
        try:
            if simulator is not None:
                url = await simulator.start()
                sims = demo_targets(url, catalog)
                groups.extend(groups_for([_Resolved(d.target, d.hardware, d.price) for d in sims]))
            async with make_session(clock, fresh_connections=not reuse_connections) as session:
                await run_benchmark(
                    groups,
                    iterations=iterations,
                    warmup=warmup,
                    session=session,
                    clock=clock,
                    redactor=redactor,
                    progress=_progress,
                )
        finally:
            if simulator is not None:
                await simulator.stop()

    asyncio.run(main())
    metadata = {
        "timestamp": started.isoformat(timespec="seconds"),
        "version": __version__,
        "prompt": prompt_name,
        "demo": demo,
        "max_tokens": max_tokens,
        "iterations": iterations,
        "warmup": warmup,
        "timeout_seconds": timeout,
        "fresh_connections": not reuse_connections,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    click.echo(render(fmt, groups, metadata))
    if all(r.outcome is not Outcome.SUCCESS for g in groups for r in g.runs):
        sys.exit(1)
