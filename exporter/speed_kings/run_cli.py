"""`speed-kings run`: the long-running exporter."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import click
import prometheus_client
from prometheus_client import CollectorRegistry

from speed_kings.catalog import Catalog, load_catalog
from speed_kings.clock import SystemClock
from speed_kings.config import (
    Config,
    ConfigError,
    demo_config,
    demo_environ,
    load_config,
    parse_listen,
)
from speed_kings.daemon import Daemon, DaemonOptions
from speed_kings.demo import DEMO_PROVIDERS
from speed_kings.keys import provider_key, secrets_from_environ
from speed_kings.logs import make_logger
from speed_kings.redact import Redactor
from speed_kings.simulator import PROFILES, Profile, Simulator
from speed_kings.web import WebServer
from speed_kings.webconfig import WebConfig, describe, load_web_config

# Demo traffic includes some rate limiting, overload and provider-side slowdowns, so those
# panels and alerts have data too.
DEMO_FAULT_RATES = {"rate_limit": 0.05, "overloaded": 0.03}
DEMO_SLOWDOWN_RATE = 0.15


def demo_profiles() -> dict[str, Profile]:
    return {
        d.profile: dataclasses.replace(
            PROFILES[d.profile], fault_rates=DEMO_FAULT_RATES, slowdown_rate=DEMO_SLOWDOWN_RATE
        )
        for d in DEMO_PROVIDERS
    }


def _known_keys(config: Config, catalog: Catalog, environ: Mapping[str, str]) -> list[str]:
    keys = []
    for entry in config.resolved_providers(catalog).values():
        value = provider_key(entry, environ).value
        if value:
            keys.append(value)
    return keys


async def serve(
    config_path: Path | None,
    listen: str | None,
    demo: bool,
    web_config_path: Path | None = None,
) -> int:
    # `*_created` series double the exposition and no dashboard or rule reads them.
    prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]
    clock = SystemClock()
    environ = demo_environ(os.environ) if demo else dict(os.environ)
    simulator: Simulator | None = None
    with contextlib.ExitStack() as stack:
        if demo:
            # Demo spend is make-believe: a fresh ledger each run, removed afterwards.
            state_dir = Path(
                stack.enter_context(tempfile.TemporaryDirectory(prefix="speed-kings-demo-"))
            )
            simulator = Simulator(demo_profiles(), clock=clock, max_truths=1000)
            url = await simulator.start()

            def load() -> tuple[Config, Catalog]:
                catalog = load_catalog()
                return demo_config(url, catalog=catalog), catalog
        else:
            assert config_path is not None
            path = config_path

            def load() -> tuple[Config, Catalog]:
                config = load_config(path)
                return config, config.load_catalog(path)

        try:
            try:
                config, catalog = load()
                web_config: WebConfig | None = (
                    load_web_config(web_config_path) if web_config_path is not None else None
                )
            except ConfigError as exc:
                # Errors quote values: a key pasted into the wrong field must not be printed.
                click.echo(Redactor(secrets_from_environ(environ))(str(exc)), err=True)
                return 1
            if not demo:
                state_dir = config.state_path(config_path)
            logger = make_logger(
                fmt=config.log.format,
                level=config.log.level,
                redactor=Redactor(
                    [*_known_keys(config, catalog, environ), *secrets_from_environ(environ)]
                ),
            )
            daemon = Daemon(
                load_config=load,
                config=config,
                catalog=catalog,
                clock=clock,
                registry=CollectorRegistry(),
                logger=logger,
                environ=environ,
                options=DaemonOptions(
                    config_path="(built-in demo)" if demo else str(config_path),
                    state_dir=state_dir,
                    demo=demo,
                    simulated_providers=(
                        frozenset(d.name for d in DEMO_PROVIDERS) if demo else frozenset()
                    ),
                ),
            )
            host, port = parse_listen(listen) if listen else config.listen_address
            web = WebServer(daemon, host, port, logger=logger, web_config=web_config)
            await daemon.start()
            try:
                address = await web.start()
                security = describe(web_config) if web_config is not None else {}
                logger.info("listening", url=address, metrics=f"{address}/metrics", **security)
                if web_config is not None and web_config.basic_auth and not web_config.tls:
                    logger.warning(
                        "basic_auth_without_tls",
                        hint="passwords cross the network in clear text: set "
                        "tls_server_config too, or terminate TLS in front of the exporter",
                    )
                daemon.install_signal_handlers(asyncio.get_running_loop())
                await daemon.wait_stopped()
            finally:
                await daemon.stop()
                await web.stop()
            return 0
        finally:
            if simulator is not None:
                await simulator.stop()


@click.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="YAML config file (see config/speed-kings.example.yaml).",
)
@click.option("--listen", metavar="HOST:PORT", help="Address for /metrics and the status page.")
@click.option(
    "--web-config",
    "web_config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="TLS and basic auth, as Prometheus exporter-toolkit's web-config.yml "
    "(see docs/security.md).",
)
@click.option(
    "--demo",
    is_flag=True,
    help="Probe built-in simulated providers (sim-*) on a fast schedule; no key needed.",
)
def run_command(
    config_path: Path | None, listen: str | None, web_config_path: Path | None, demo: bool
) -> None:
    """Run the exporter: probe on schedule, serve /metrics and the status page."""
    if demo and config_path:
        raise click.UsageError("--demo builds its own config: drop --config (or drop --demo)")
    if not demo and not config_path:
        raise click.UsageError("give --config FILE, or --demo to try it with simulated providers")
    if listen:
        try:
            parse_listen(listen)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--listen") from None
    raise SystemExit(asyncio.run(serve(config_path, listen, demo, web_config_path)))
