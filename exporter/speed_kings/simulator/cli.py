"""`speed-kings simulate`: serve the simulated providers until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import signal
from types import MappingProxyType

import click

from speed_kings.simulator.profiles import FAULTS, PROFILES
from speed_kings.simulator.server import Simulator

_WIRE_SUFFIX = MappingProxyType(
    {"openai": "/v1", "anthropic": "/v1", "gemini": "/v1beta", "ollama": ""}
)


def base_url(url: str, scenario: str, wire: str) -> str:
    """What a client of `wire` uses as its base URL for `scenario` (`profile[@fault]`)."""
    return f"{url}/{scenario}{_WIRE_SUFFIX[wire]}"


async def _serve(host: str, port: int, seed: int, default_profile: str) -> None:
    sim = Simulator(seed=seed, default_profile=default_profile)
    try:
        url = await sim.start(host, port)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc}") from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        click.echo(f"speed-kings simulator listening on {url} (seed {seed})")
        width = max(len(name) for name in sim.profiles)
        for name, profile in sim.profiles.items():
            click.echo(f"{name:<{width}}  {profile.wire:<9}  {base_url(url, name, profile.wire)}")
        example = base_url(url, "groq@rate_limit", "openai")
        click.echo(f"faults: append @<fault> to a profile, e.g. {example}")
        click.echo(f"faults: {', '.join(FAULTS)}")
        click.echo(f"truth: {url}/_sim/requests/<x-request-id>, profiles: {url}/_sim/profiles")
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await sim.stop()
    click.echo("simulator stopped")


@click.command("simulate")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8900, show_default=True, type=int, help="0 picks a free port.")
@click.option(
    "--seed", default=0, show_default=True, type=int, help="Seed for text, jitter, faults."
)
@click.option(
    "--default-profile",
    default="openai",
    show_default=True,
    type=click.Choice(list(PROFILES)),
    help="Profile served by routes without a /{profile} prefix.",
)
def simulate_command(host: str, port: int, seed: int, default_profile: str) -> None:
    """Serve simulated LLM providers (all four wire protocols) with known truth.

    Every profile is served on every wire under /{profile}; /{profile}@{fault} injects a
    fault. GET /_sim/requests/{id} returns what was really sent for a request id.
    """
    asyncio.run(_serve(host, port, seed, default_profile))
