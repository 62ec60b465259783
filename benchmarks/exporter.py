"""The exporter as `speed-kings run` assembles it (Daemon + WebServer on one event loop),
for a config built in code. Used in-process by the accuracy section (its probes, scrapes and
our measured probes share one loop, as in production) and by `benchmarks.exporter_worker`
(a process of its own, for /metrics latency and RSS)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import prometheus_client
from prometheus_client import CollectorRegistry

from speed_kings.catalog import Catalog
from speed_kings.clock import SystemClock
from speed_kings.config import Config
from speed_kings.daemon import ConfigLoader, Daemon, DaemonOptions
from speed_kings.logs import make_logger
from speed_kings.web import WebServer


@dataclass(slots=True)
class Running:
    daemon: Daemon
    url: str  # http://127.0.0.1:PORT of /metrics and the status page

    def probes_done(self) -> int:
        """Probes the daemon recorded (every outcome), from its own counter."""
        samples = self.daemon.metrics.probes.metric().samples
        return int(sum(s.value for s in samples if s.name.endswith("_total")))


@asynccontextmanager
async def running_exporter(
    config: Config,
    catalog: Catalog,
    environ: Mapping[str, str],
    *,
    simulated: frozenset[str] = frozenset(),
    load_config: ConfigLoader | None = None,
) -> AsyncIterator[Running]:
    """Starts a Daemon and its WebServer on 127.0.0.1 (free port); stops both after.
    `load_config` is what a reload reads (default: `config` and `catalog` again).

    Logs are rendered as in production (JSON, info level: one line per probe) and thrown
    away, so their cost stays in the loop without flooding the benchmark's output."""
    prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]
    with (
        tempfile.TemporaryDirectory(prefix="speed-kings-bench-") as state,
        open(os.devnull, "w") as devnull,  # noqa: ASYNC230 (opening /dev/null never blocks)
    ):
        logger = make_logger(fmt="json", level="info", stream=devnull)
        daemon = Daemon(
            load_config=load_config or (lambda: (config, catalog)),
            config=config,
            catalog=catalog,
            clock=SystemClock(),
            registry=CollectorRegistry(),
            logger=logger,
            environ=environ,
            options=DaemonOptions(
                config_path="(benchmark)",
                state_dir=Path(state),
                demo=bool(simulated),
                drain_seconds=5.0,
                simulated_providers=simulated,
            ),
        )
        web = WebServer(daemon, "127.0.0.1", 0, logger=logger)
        await daemon.start()
        try:
            url = await web.start()
            try:
                yield Running(daemon, url)
            finally:
                await web.stop()
        finally:
            await daemon.stop()
