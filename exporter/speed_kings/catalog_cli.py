"""`speed-kings providers` and `speed-kings pricing`: the catalog as tables, JSON or CSV.

The command functions are the only place that reads `os.environ`; everything below them
takes the environment as an argument. Keys are never printed, only where they came from.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from speed_kings.catalog import (
    Catalog,
    CatalogError,
    ProviderEntry,
    load_catalog,
    unknown_provider_message,
)
from speed_kings.keys import provider_status

# Wide enough that piped output (tests, grep) never wraps or truncates a cell; rich only
# uses the width a table needs, so this adds no padding.
_PIPE_WIDTH = 400

PRICE_FIELDS = (
    "provider",
    "model",
    "provider_model_id",
    "input_per_million",
    "cached_input_per_million",
    "output_per_million",
    "checked",
    "source",
    "estimate",
)

_catalog_option = click.option(
    "--catalog",
    "catalog_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Catalog YAML to use instead of the packaged one.",
)


def _load(path: Path | None) -> Catalog:
    try:
        return load_catalog(path)
    except CatalogError as exc:
        raise click.ClickException(str(exc)) from None


def _money(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.2f}" if round(value, 2) == value else f"{value:g}"


def _default_model(entry: ProviderEntry) -> str:
    model_id = entry.model_id(entry.default_model)
    if model_id == entry.default_model:
        return entry.default_model
    return f"{entry.default_model} ({model_id})"


def provider_rows(catalog: Catalog, environ: Mapping[str, str]) -> list[dict[str, Any]]:
    """One row per provider with its probe status in this environment (no key values)."""
    rows = []
    for name, entry in catalog.providers.items():
        status = provider_status(entry, environ)
        rows.append(
            {
                "name": name,
                "display_name": entry.display_name,
                "hardware": entry.hardware,
                "wire": entry.wire,
                "base_url": entry.resolve_base_url(environ),
                "key_env": list(entry.key_env_names),
                "key_source": status.key.source,
                "ready": status.ready,
                "status": status.text,
                "default_model": entry.default_model,
                "default_model_id": entry.model_id(entry.default_model),
            }
        )
    return rows


def price_rows(catalog: Catalog, providers: Iterable[str]) -> list[dict[str, Any]]:
    """One row per provider and catalog model; price fields are None where unknown."""
    rows = []
    for name in providers:
        entry = catalog.get(name)
        for canonical, model in entry.models.items():
            price = model.price or entry.default_price
            rows.append(
                {
                    "provider": name,
                    "model": canonical,
                    "provider_model_id": model.id,
                    "input_per_million": price.input if price else None,
                    "cached_input_per_million": price.cached_input if price else None,
                    "output_per_million": price.output if price else None,
                    "checked": price.checked.isoformat() if price else None,
                    "source": price.source if price else None,
                    "estimate": price.is_estimate if price else None,
                    "notes": model.notes,
                }
            )
    return rows


def _print_table(title: str, table: Table) -> None:
    out = sys.stdout
    tty = out.isatty()
    console = Console(file=out, width=None if tty else _PIPE_WIDTH, highlight=False)
    console.print(Text(title))  # not a table title: that would be padded to the table width
    console.print(table)


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> Table:
    table = Table()
    for header in headers:
        table.add_column(header, overflow="fold")
    for row in rows:
        # Text(), not markup: ids and messages may contain '[' that rich would eat.
        table.add_row(*(Text(cell) for cell in row))
    return table


@click.command()
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@_catalog_option
def providers_command(fmt: str, catalog_path: Path | None) -> None:
    """List providers, their hardware, wire and whether a key is configured.

    A provider without a key is not probed; the status column says which variable to set.
    Keys come from NAME or from the file named by NAME_FILE (Docker secrets).
    """
    catalog = _load(catalog_path)
    rows = provider_rows(catalog, os.environ)
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    _print_table(
        f"Providers (catalog checked {catalog.checked.isoformat()})",
        _table(
            ["name", "hardware", "wire", "base URL", "key env", "status", "default model"],
            (
                [
                    row["name"],
                    row["hardware"],
                    row["wire"],
                    row["base_url"] or "(set in config)",
                    ", ".join(row["key_env"]) or "-",
                    row["status"],
                    _default_model(catalog.get(row["name"])),
                ]
                for row in rows
            ),
        ),
    )


@click.command()
@click.option(
    "--provider",
    "provider_names",
    multiple=True,
    metavar="NAME",
    help="Only this provider (repeatable).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
)
@_catalog_option
def pricing_command(fmt: str, provider_names: tuple[str, ...], catalog_path: Path | None) -> None:
    """Prices per provider and model, US dollars per million tokens, with the day each was
    checked and its source. "unverified estimate" marks prices not from a checked source."""
    catalog = _load(catalog_path)
    for name in provider_names:
        if name not in catalog.providers:
            raise click.BadParameter(
                unknown_provider_message(name, catalog.names), param_hint="'--provider'"
            )
    rows = price_rows(catalog, provider_names or catalog.names)
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
    elif fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=[*PRICE_FIELDS, "notes"], lineterminator="\n")
        writer.writeheader()
        # JSON keeps booleans; CSV readers expect lowercase words, not Python's True/False.
        writer.writerows(
            {**row, "estimate": "" if row["estimate"] is None else str(row["estimate"]).lower()}
            for row in rows
        )
        click.echo(buffer.getvalue(), nl=False)
    else:
        _print_table(
            f"Prices, $ per 1M tokens (catalog checked {catalog.checked.isoformat()})",
            _table(
                [
                    "provider",
                    "model",
                    "provider model id",
                    "input",
                    "cached input",
                    "output",
                    "checked",
                    "source",
                ],
                (
                    [
                        row["provider"],
                        row["model"],
                        row["provider_model_id"],
                        _money(row["input_per_million"]) or "-",
                        _money(row["cached_input_per_million"]) or "-",
                        _money(row["output_per_million"]) or "-",
                        row["checked"] or "-",
                        row["source"] or "no price: " + (row["notes"] or "unknown"),
                    ]
                    for row in rows
                ),
            ),
        )


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown(catalog: Catalog) -> str:
    """docs/providers.md, generated so the doc cannot drift from the catalog."""
    out: list[str] = [
        "# Providers",
        "",
        "<!-- Generated from exporter/speed_kings/catalog.yaml by",
        "     `python -m speed_kings.catalog_cli > docs/providers.md`; edit the catalog. -->",
        "",
        f"Catalog checked **{catalog.checked.isoformat()}**. Providers are data: each entry "
        "names its base URL, wire protocol, hardware class, API-key variable, default model "
        "and the provider's ids and prices for canonical model names. `speed-kings providers` "
        "shows which are configured; `speed-kings pricing` prints the prices.",
        "",
        "## API keys",
        "",
        "For each variable listed (in order) the exporter uses `NAME` if it is set, otherwise "
        "the file named by `NAME_FILE` (Docker secrets; surrounding whitespace stripped). A "
        "`NAME_FILE` that cannot be read is reported as a problem and the provider is not "
        "probed. A provider without a key is not probed and says so in the log and in "
        "`speed-kings providers`. Keys never appear in output, logs or metrics.",
        "",
        "## Base URLs",
        "",
        "`base_url` is the part before the wire's fixed path: `openai` appends "
        "`/chat/completions`, `anthropic` `/messages`, `gemini` "
        "`/models/{model}:streamGenerateContent?alt=sse`, `ollama` `/api/chat`. A provider's "
        "`base_url_env` (e.g. `OLLAMA_HOST`, `CUSTOM_BASE_URL`) overrides it; a bare "
        "`host[:port]` means `http://host:port` with the catalog URL's port by default.",
        "",
        "## Hardware classes",
        "",
        "`WSE` Cerebras wafer-scale engine, `LPU` Groq language processing unit, `RDU` "
        "SambaNova reconfigurable dataflow unit, `GPU` (mostly NVIDIA) GPU clouds, `TPU` "
        "Google TPUs, `local` your own machine, `aggregator` a router in front of other "
        "providers, `mixed` several accelerator kinds behind one API, `unknown` whatever a "
        "custom endpoint runs on.",
        "",
        "## Summary",
        "",
        "| provider | name | hardware | wire | base URL | key env | default model |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, entry in catalog.providers.items():
        base = f"`{entry.base_url}`" if entry.base_url else "(from config)"
        if entry.base_url_env:
            base += f" or `${entry.base_url_env}`"
        keys = " then ".join(f"`{k}`" for k in entry.key_env_names) or "none"
        if entry.api_key_optional:
            keys += " (optional)"
        out.append(
            f"| `{name}` | {_md(entry.display_name)} | {entry.hardware} | {entry.wire} | "
            f"{base} | {keys} | `{entry.default_model}` → `{entry.model_id(entry.default_model)}` |"
        )
    out += [
        "",
        "## Prices",
        "",
        "US dollars per million tokens. `checked` is the day the figure was checked (a source "
        "dated only by month is recorded as the 1st). **unverified estimate** marks a price "
        "that is not from the reference (see the model's note; its `checked` is the day the "
        "remembered list price applied, not a fresh check); `-` means no known price: cost "
        "is then unknown unless the provider reports it.",
    ]
    assumptions: list[str] = []
    for name, entry in catalog.providers.items():
        out += ["", f"### {_md(entry.display_name)} (`{name}`)", ""]
        out += [f"- {_md(note)}" for note in entry.notes]
        out += [f"- *Assumption:* {_md(item)}" for item in entry.assumptions]
        assumptions += [f"`{name}`: {_md(item)}" for item in entry.assumptions]
        if entry.default_price is not None:
            p = entry.default_price
            out.append(
                f"- Any model not listed: input {_money(p.input)}, output {_money(p.output)} "
                f"({_md(p.source)})."
            )
        out += [
            "",
            "| model | provider id | input | cached input | output | checked | source | notes |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for row in price_rows(catalog, [name]):
            source = row["source"] or "-"
            if row["estimate"]:
                source = f"**{source}**"
                assumptions.append(f"`{name}` `{row['model']}`: {_md(row['notes'] or '')}")
            out.append(
                "| `{model}` | `{pid}` | {i} | {c} | {o} | {chk} | {src} | {notes} |".format(
                    model=row["model"],
                    pid=row["provider_model_id"],
                    i=_money(row["input_per_million"]) or "-",
                    c=_money(row["cached_input_per_million"]) or "-",
                    o=_money(row["output_per_million"]) or "-",
                    chk=row["checked"] or "-",
                    src=_md(source),
                    notes=_md(row["notes"] or ""),
                )
            )
    out += ["", "## Assumptions and estimates", ""]
    out += [f"- {item}" for item in assumptions]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    click.echo(render_markdown(load_catalog()), nl=False)
