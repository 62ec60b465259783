"""`speed-kings probe` as a user runs it: real processes, real HTTP, checked against the
simulator's own record of what it sent."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.procs import SPEED_KINGS, simulator_process

CANARY = "sk-canary-probe-cli-0123456789abcdef"
RUN_FIELDS = {
    "outcome",
    "http_status",
    "time_to_headers_seconds",
    "time_to_first_token_seconds",
    "time_to_first_answer_token_seconds",
    "request_duration_seconds",
    "output_tokens_per_second",
    "time_per_output_token_seconds",
    "input_tokens",
    "output_tokens",
    "reasoning_tokens",
    "tokens_estimated",
    "cost_usd",
    "model_load_seconds",
    "error",
}


@pytest.fixture(scope="module")
def sim_url() -> Iterator[str]:
    with simulator_process("--seed", "11") as url:
        yield url


def probe(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base_env = {
        k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_API_KEY_FILE"))
    }
    return subprocess.run(
        [*SPEED_KINGS, "probe", *args],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        env={**base_env, **(env or {})},
    )


def truth(url: str, request_id: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/_sim/requests/{request_id}", timeout=5) as resp:
        doc: dict[str, Any] = json.load(resp)
    return doc


@pytest.mark.parametrize(
    "profile", ["deepseek", "openai", "groq", "moonshot", "crlf", "openrouter"]
)
def test_json_matches_the_servers_own_timing(sim_url: str, profile: str) -> None:
    """The issue's acceptance check: through role-only first chunks, keep-alives, reasoning
    deltas and each usage placement, the JSON matches the server's timing."""
    done = probe(
        "--base-url",
        f"{sim_url}/{profile}/v1",
        "--wire",
        "openai",
        "--model",
        "m1",
        "--max-tokens",
        "60",
        "--iterations",
        "2",
        "--format",
        "json",
        "--yes",
        env={"CUSTOM_API_KEY": CANARY},
    )
    assert done.returncode == 0, done.stderr
    assert CANARY not in done.stdout + done.stderr
    doc = json.loads(done.stdout)
    assert set(doc) == {"metadata", "results"}
    assert doc["metadata"]["max_tokens"] == 60 and doc["metadata"]["iterations"] == 2
    [group] = doc["results"]
    assert (group["provider"], group["model"], group["prompt"]) == ("custom", "m1", "short")
    assert len(group["runs"]) == 2
    for run in group["runs"]:
        assert set(run) >= RUN_FIELDS
        assert run["outcome"] == "success", run["error"]
        sent = truth(sim_url, run["request_id"])
        true_ttft = sent["first_token_sent_at"] - sent["received_at"]
        assert abs(run["time_to_first_token_seconds"] - true_ttft) <= 0.010
        true_answer = sent["first_answer_token_sent_at"] - sent["received_at"]
        assert abs(run["time_to_first_answer_token_seconds"] - true_answer) <= 0.010
        true_tps = (sent["output_tokens"] - 1) / (
            sent["last_token_sent_at"] - sent["first_token_sent_at"]
        )
        assert abs(run["output_tokens_per_second"] - true_tps) / true_tps <= 0.03
        assert run["output_tokens"] == sent["output_tokens"]
        assert run["reasoning_tokens"] in (sent["reasoning_tokens"], None)
        assert run["tokens_estimated"] is False
    summary = group["summary"]
    assert summary["runs"] == summary["successes"] == 2
    ttfts = sorted(r["time_to_first_token_seconds"] for r in group["runs"])
    assert summary["time_to_first_token_seconds"]["p50"] == pytest.approx(sum(ttfts) / 2)


def test_catalog_provider_maps_model_id_on_the_wire(sim_url: str, tmp_path: Path) -> None:
    """`--provider` takes the base URL, key and model id from the catalog."""
    catalog = yaml.safe_load(
        (Path(__file__).parents[1] / "exporter/speed_kings/catalog.yaml").read_text()
    )
    catalog["providers"]["groq"]["base_url"] = f"{sim_url}/groq/v1"
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(catalog))
    done = probe(
        "--provider",
        "groq",
        "--model",
        "llama-3.1-8b",
        "--catalog",
        str(path),
        "--iterations",
        "1",
        "--max-tokens",
        "20",
        "--format",
        "json",
        "--yes",
        env={"GROQ_API_KEY": CANARY},
    )
    assert done.returncode == 0, done.stderr
    assert "Estimated cost: at most $" in done.stderr
    [group] = json.loads(done.stdout)["results"]
    assert group["provider_model"] == "llama-3.1-8b-instant" and group["hardware"] == "LPU"
    [run] = group["runs"]
    assert truth(sim_url, run["request_id"])["model"] == "llama-3.1-8b-instant"
    assert run["cost_usd"] > 0 and run["cost_source"] == "pricing"
    assert CANARY not in done.stdout + done.stderr


def test_two_providers_alternate_order(sim_url: str, tmp_path: Path) -> None:
    catalog = yaml.safe_load(
        (Path(__file__).parents[1] / "exporter/speed_kings/catalog.yaml").read_text()
    )
    catalog["providers"]["groq"]["base_url"] = f"{sim_url}/fast/v1"
    catalog["providers"]["cerebras"]["base_url"] = f"{sim_url}/crlf/v1"
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(catalog))
    done = probe(
        "--provider",
        "groq",
        "--provider",
        "cerebras",
        "--model",
        "llama-3.3-70b",
        "--catalog",
        str(path),
        "--iterations",
        "3",
        "--max-tokens",
        "10",
        "--yes",
        env={"GROQ_API_KEY": "k1-xxxxxxxx", "CEREBRAS_API_KEY": "k2-xxxxxxxx"},
    )
    assert done.returncode == 0, done.stderr
    order = [line.split()[1] for line in done.stderr.splitlines() if line.startswith("run ")]
    assert order == ["groq", "cerebras", "cerebras", "groq", "groq", "cerebras"]
    assert "groq" in done.stdout and "cerebras" in done.stdout  # the table


@pytest.mark.parametrize("fmt", ["table", "markdown", "csv"])
def test_other_formats(sim_url: str, fmt: str) -> None:
    done = probe(
        "--base-url",
        f"{sim_url}/fast/v1",
        "--wire",
        "openai",
        "--model",
        "m",
        "--iterations",
        "2",
        "--warmup",
        "1",
        "--max-tokens",
        "20",
        "--format",
        fmt,
        "--yes",
        env={"CUSTOM_API_KEY": CANARY},
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("warmup ") == 1 and done.stderr.count("run ") == 2
    if fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(done.stdout)))
        assert len(rows) == 2 and all(r["outcome"] == "success" for r in rows)
        assert RUN_FIELDS - {"model_load_seconds"} <= set(rows[0])
    elif fmt == "markdown":
        assert "| custom | m | short | 2/2 |" in done.stdout
    else:
        assert "custom" in done.stdout and "2/2" in done.stdout


def test_every_run_failing_exits_1_with_the_reason(sim_url: str) -> None:
    done = probe(
        "--base-url",
        f"{sim_url}/fast@rate_limit/v1",
        "--wire",
        "openai",
        "--model",
        "m",
        "--iterations",
        "2",
        "--format",
        "json",
        "--yes",
        env={"CUSTOM_API_KEY": CANARY},
    )
    assert done.returncode == 1
    runs = json.loads(done.stdout)["results"][0]["runs"]
    assert [r["outcome"] for r in runs] == ["rate_limited", "rate_limited"]
    assert all(
        r["http_status"] == 429 and r["rate_limit"]["retry_after_seconds"] == 7 for r in runs
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--base-url", "http://127.0.0.1:9/v1", "--model", "m"], "--base-url needs --wire"),
        (["--base-url", "http://127.0.0.1:9/v1", "--wire", "openai"], "--base-url needs --model"),
        ([], "name a provider with --provider NAME"),
        (["--provider", "grok"], "unknown provider 'grok' (did you mean 'groq'?)"),
        (["--provider", "groq"], "not configured: set GROQ_API_KEY"),
        (["--provider", "groq", "--wire", "openai"], "--wire goes with --base-url"),
        (["--demo", "--provider", "groq"], "--demo probes the simulated providers"),
        (
            ["--base-url", "http://127.0.0.1:9/v1", "--wire", "openai", "--model", "m"],
            "pass --yes",
        ),  # unknown price and no terminal to ask on
        (["--iterations", "0", "--provider", "ollama"], "Invalid value for '--iterations'"),
    ],
)
def test_bad_arguments_exit_2_with_a_clear_message(args: list[str], message: str) -> None:
    done = probe(*args)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert message in done.stderr


def test_unreadable_key_file_is_a_usage_error(sim_url: str) -> None:
    done = probe(
        "--base-url",
        f"{sim_url}/fast/v1",
        "--wire",
        "openai",
        "--model",
        "m",
        "--iterations",
        "1",
        "--format",
        "json",
        "--yes",
        "--api-key-env",
        "MY_KEY",
        env={"MY_KEY_FILE": "/nonexistent/key"},
    )
    assert done.returncode == 2 and "MY_KEY_FILE points to /nonexistent/key" in done.stderr
