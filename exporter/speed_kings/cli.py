"""`speed-kings` command line: one group, each command in the module that owns it."""

from __future__ import annotations

import click

from speed_kings import __version__
from speed_kings.catalog_cli import pricing_command, providers_command
from speed_kings.config_cli import check_config_command
from speed_kings.probe_cli import probe_command
from speed_kings.run_cli import run_command
from speed_kings.simulator.cli import simulate_command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="speed-kings")
def main() -> None:
    """Speed Kings: measure LLM inference providers' speed, cost and rate limits."""


main.add_command(run_command, "run")
main.add_command(check_config_command, "check-config")
main.add_command(probe_command, "probe")
main.add_command(providers_command, "providers")
main.add_command(pricing_command, "pricing")
main.add_command(simulate_command, "simulate")
