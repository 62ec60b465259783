"""Secrets sweep: API keys never leave the exporter, whatever the providers do.

One real `speed-kings run --config FILE` (log level debug: the most it ever says) probes,
with a distinct random CANARY key each:
- `speed-kings simulate` through every fault mode (and cleanly) on the openai, anthropic
  and gemini wires;
- fake providers (a small aiohttp server here) that ECHO the key back: in a 401 JSON body
  as OpenAI does ("Incorrect API key provided: ..."), in a text body, in a mid-stream error
  event, in the Anthropic and Gemini error shapes, far into a long message, in a header.
Keys come from environment variables and from `*_FILE` files (Docker secrets), in every
shape the redactor knows (sk-, gsk_, sk-ant-, AIza...) and in none (`canary.HEX`: only
"this is a key we hold" can redact it).

Once every provider has probed, everything the process emitted is collected: stdout,
stderr, /metrics, /, /api/probes, /api/status, /readyz, a key file rotated and reloaded,
reload errors by POST /-/reload and SIGHUP with the key pasted into the config, and
`check-config` on the same files. No canary, nor either half of its random part, may be
in any of it.

The canaries stay out of pytest's own output too: assertions compare with `in` inside
helpers and report only which provider's key leaked where, never the key.
"""

from __future__ import annotations

import copy
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from speed_kings.simulator.profiles import FAULTS
from tests.procs import (
    SPEED_KINGS,
    DaemonProcess,
    clean_environ,
    http,
    parse_metrics,
    sample,
    samples,
    simulator_process,
    wait_for,
)
from tests.threaded_server import ThreadedServer

MODEL = "llama-3.1-8b"
WIRE_SUFFIX = {"openai": "/v1", "anthropic": "/v1", "gemini": "/v1beta"}
REDACTED = "[REDACTED]"
# Key shapes: the redactor knows the first four by their look; the last only because the
# exporter holds it.
SHAPES: tuple[Callable[[str], str], ...] = (
    lambda token: f"sk-canary-{token}",
    lambda token: f"gsk_canary{token}",
    lambda token: f"sk-ant-canary-{token}",
    lambda token: f"AIzaCanary{token}",
    lambda token: f"canary.{token}",
)
PAGES = ("/metrics", "/", "/api/probes", "/api/status", "/readyz", "/healthz")
CLIP = 300  # speed_kings.wire.base.clip's limit on an error detail


# --- canaries ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Canary:
    provider: str
    key: str = field(repr=False)  # pytest prints fixture values: never the key
    token: str = field(repr=False)  # the random part: its halves are searched too

    def found_in(self, text: str) -> str | None:
        """Which part of the key is in `text` (None: none). Never the key itself."""
        if self.key in text:
            return "the whole key"
        half = len(self.token) // 2
        if self.token[:half] in text:
            return "the first half of its random part"
        if self.token[half:] in text:
            return "the second half of its random part"
        return None


def new_canary(provider: str, shape: int) -> Canary:
    token = secrets.token_hex(12)
    return Canary(provider, SHAPES[shape % len(SHAPES)](token), token)


def leaks(haystacks: dict[str, str], canaries: list[Canary]) -> list[str]:
    """'PROVIDER's key (part) in WHERE' for each leak: safe to print."""
    return [
        f"{c.provider}'s key ({part}) in {where}"
        for where, text in haystacks.items()
        for c in canaries
        if (part := c.found_in(text)) is not None
    ]


# --- providers that echo the key ----------------------------------------------------------------
def _key_of(request: web.Request) -> str:
    auth = request.headers.get("Authorization", "")
    return (
        auth.removeprefix("Bearer ").strip()
        or request.headers.get("x-api-key", "")
        or request.headers.get("x-goog-api-key", "")
        or request.query.get("key", "")
    )


def long_message(key: str) -> str:
    """An OpenAI-shaped 401 message whose key straddles the error-detail clip: the detail
    `HTTP 401: invalid_api_key: MESSAGE` is cut at CLIP characters, mid-key."""
    head = len("HTTP 401: invalid_api_key: ")
    filler = "x" * (CLIP - 20 - head - 1)
    return f"{filler} {key} is not a valid API key."


class EchoServer(ThreadedServer):
    """Fake providers, one per variant under `/{variant}`, that echo the key they get."""

    VARIANTS = ("json", "text", "stream", "anthropic", "gemini", "long", "header")

    def __init__(self) -> None:
        super().__init__()
        self.keys_seen: set[str] = set()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        key = _key_of(request)
        self.keys_seen.add(key)
        variant = request.match_info["variant"]
        if variant == "json":
            message = (
                f"Incorrect API key provided: {key}. You can find your API key at "
                "https://platform.openai.com/account/api-keys."
            )
            error = {"message": message, "type": "invalid_request_error", "code": "invalid_api_key"}
            return web.json_response({"error": error}, status=401)
        if variant == "text":
            return web.Response(status=403, text=f"Forbidden: key {key} is not allowed here")
        if variant == "stream":
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await response.prepare(request)
            event = {"error": {"message": f"API key {key} was revoked", "type": "auth_error"}}
            await response.write(f"data: {json.dumps(event)}\n\n".encode())
            await response.write_eof()
            return response
        if variant == "anthropic":
            error = {"type": "authentication_error", "message": f"invalid x-api-key: {key}"}
            return web.json_response({"type": "error", "error": error}, status=401)
        if variant == "gemini":
            error = {
                "code": 400,
                "message": f"API key not valid: {key}. Please pass a valid API key.",
                "status": "INVALID_ARGUMENT",
            }
            return web.json_response({"error": error}, status=400)
        if variant == "long":
            error = {"message": long_message(key), "code": "invalid_api_key"}
            return web.json_response({"error": error}, status=401)
        # header: the key comes back as the request id
        return web.json_response(
            {"error": {"message": "unauthorized", "code": "invalid_api_key"}},
            status=401,
            headers={"x-request-id": key},
        )

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/{variant}/v1/chat/completions", self._handle)
        app.router.add_post("/{variant}/v1/messages", self._handle)
        app.router.add_post("/{variant}/v1beta/models/{model}:streamGenerateContent", self._handle)


# --- the run ---------------------------------------------------------------------------------
@dataclass
class Sweep:
    canaries: dict[str, Canary]  # provider -> its canary
    haystacks: dict[str, str] = field(default_factory=dict)  # where -> everything seen there
    last_errors: dict[str, str] = field(default_factory=dict)  # provider -> last probe error
    request_ids: dict[str, str] = field(default_factory=dict)  # provider -> last request id
    outcomes: dict[str, set[str]] = field(default_factory=dict)  # provider -> outcomes seen
    echo_keys_seen: set[str] = field(default_factory=set)
    rotated: Canary | None = None
    reload_answers: dict[str, tuple[int, str]] = field(default_factory=dict)
    exit_code: int | None = None
    seconds: float = 0.0

    def __repr__(self) -> str:  # pytest prints fixture values: no keys, no haystacks
        return f"Sweep({len(self.canaries)} providers, {len(self.haystacks)} outputs)"

    def search(self, canaries: list[Canary], *, where: str = "") -> list[str]:
        return leaks({k: v for k, v in self.haystacks.items() if where in k}, canaries)


def provider_doc(base_url: str, wire: str, env: str) -> dict[str, Any]:
    price = {"input": 0, "output": 0, "checked": date(2026, 11, 22), "source": "test"}
    return {"base_url": base_url, "wire": wire, "hardware": "GPU", "api_key_env": env,
            "default_price": price}  # fmt: skip


def build(sim: str, echo: str, folder: Path) -> tuple[dict[str, Any], dict[str, str], Sweep]:
    """The config, the environment (half the keys in variables, half in *_FILE files) and
    the canaries."""
    providers: dict[str, Any] = {}
    env: dict[str, str] = {}
    canaries: dict[str, Canary] = {}
    targets: list[tuple[str, str, str]] = []  # (provider, base URL, wire)
    for wire, suffix in WIRE_SUFFIX.items():
        for fault in (None, *FAULTS):
            scenario = f"fast@{fault}" if fault else "fast"
            name = f"{wire}-{fault or 'ok'}".replace("_", "-")
            targets.append((name, f"{sim}/{scenario}{suffix}", wire))
    for variant in EchoServer.VARIANTS:
        wire = variant if variant in ("anthropic", "gemini") else "openai"
        targets.append((f"echo-{variant}", f"{echo}/{variant}{WIRE_SUFFIX[wire]}", wire))
    for i, (name, base_url, wire) in enumerate(targets):
        canary = new_canary(name, i)
        if name == "echo-long":  # no shape: only the exporter's own list can redact it
            canary = new_canary(name, len(SHAPES) - 1)
        canaries[name] = canary
        var = f"SWEEP_{i}_API_KEY"
        providers[name] = provider_doc(base_url, wire, var)
        if i % 2 or name == "echo-json":  # echo-json's file is rotated later
            key_file = folder / "secrets" / f"{name}.key"
            key_file.parent.mkdir(exist_ok=True)
            key_file.write_text(canary.key + "\n")  # as `docker secret create` leaves it
            env[f"{var}_FILE"] = str(key_file)
        else:
            env[var] = canary.key
    config = {
        "state_dir": str(folder / "state"),
        "log": {"format": "json", "level": "debug"},
        "concurrency": 16,
        "defaults": {
            "timeout": "10s",
            "read_timeout": "2s",
            "connect_timeout": "2s",
            "max_response_bytes": 65536,
        },
        "providers": providers,
        "comparisons": [
            {
                "name": name,
                "model": MODEL,
                "providers": [name],
                "schedule": {"interval": "4s"},
                "max_tokens": 20,
            }
            for name in providers
        ],
    }
    return config, env, Sweep(canaries)


def write_yaml(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def capture(sweep: Sweep, daemon: DaemonProcess, label: str) -> None:
    for page in PAGES:
        status, headers, body = http(daemon.url + page)
        sweep.haystacks[f"{label} GET {page}"] = f"{status} {json.dumps(headers)}\n{body}"


def probe_counts(daemon: DaemonProcess) -> dict[str, float]:
    counts: dict[str, float] = {}
    for labels, value in samples(daemon.metrics(), "speedkings_probes_total"):
        counts[labels["provider"]] = counts.get(labels["provider"], 0) + value
    return counts


def read_last_results(sweep: Sweep, daemon: DaemonProcess) -> None:
    doc = json.loads(daemon.get("/api/probes"))
    for entry in doc["last_results"] + doc["recent_probes"]:
        sweep.outcomes.setdefault(entry["provider"], set()).add(entry["outcome"])
    for entry in doc["last_results"]:
        sweep.last_errors[entry["provider"]] = entry["error"] or ""
        sweep.request_ids[entry["provider"]] = entry["request_id"] or ""


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sweep]:
    folder = tmp_path_factory.mktemp("sweep")
    started = time.monotonic()
    with simulator_process("--seed", "11") as sim, EchoServer() as echo:
        config, env, result = build(sim, echo.url, folder)
        path = write_yaml(folder / "speed-kings.yaml", config)
        proc_env = clean_environ(**env)
        daemon = DaemonProcess(["--config", str(path)], out_dir=folder, env=proc_env)
        try:
            daemon.wait_healthy()
            wait_for(
                lambda: (
                    set(probe_counts(daemon)) >= set(result.canaries)
                    and all(v >= 1 for v in probe_counts(daemon).values())
                ),
                timeout=60,
                what="a probe of every provider",
            )
            capture(result, daemon, "after first probes")

            # A key file rotated (Docker secret update) and a good reload: the new key is
            # one the logger was never told about at start.
            rotated = new_canary("echo-json (rotated key file)", len(SHAPES) - 1)
            result.rotated = rotated
            var = config["providers"]["echo-json"]["api_key_env"]
            Path(env[f"{var}_FILE"]).write_text(rotated.key + "\n")
            rotated_at = time.time()
            daemon.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: rotated.key in echo.keys_seen, timeout=30, what="the rotated key")
            wait_for(
                lambda: any(
                    p["provider"] == "echo-json" and p["started_at"] >= rotated_at
                    for p in json.loads(daemon.get("/api/probes"))["last_results"]
                ),
                timeout=30,
                what="an echo-json probe with the rotated key",
            )
            capture(result, daemon, "after key rotation")

            # Reload errors with the key pasted into the config, by HTTP and by SIGHUP.
            broken = copy.deepcopy(config)
            pasted = result.canaries["openai-ok"]
            broken["providers"]["openai-ok"]["api_key_env"] = pasted.key
            broken["providers"]["openai-rate-limit"]["api_key"] = result.canaries[
                "openai-rate-limit"
            ].key
            write_yaml(path, broken)
            result.reload_answers["pasted key, POST"] = http(
                daemon.url + "/-/reload", method="POST"
            )[::2]
            capture(result, daemon, "reload error (key pasted in key fields)")
            daemon.proc.send_signal(signal.SIGHUP)
            time.sleep(1.0)
            capture(result, daemon, "reload error (key pasted in key fields), SIGHUP")

            wrong_field = copy.deepcopy(config)
            wrong_field["providers"]["openai-overloaded"]["base_url_env"] = result.canaries[
                "openai-overloaded"
            ].key
            write_yaml(path, wrong_field)
            result.reload_answers["key in a wrong field, POST"] = http(
                daemon.url + "/-/reload", method="POST"
            )[::2]
            capture(result, daemon, "reload error (key in a wrong field)")

            write_yaml(path, config)  # good again, for check-config and a clean stop
            assert http(daemon.url + "/-/reload", method="POST")[0] == 200
            read_last_results(result, daemon)
            metrics = parse_metrics(daemon.metrics_text())
            assert sample(metrics, "speedkings_config_last_reload_successful") == 1
            result.exit_code, _ = daemon.terminate()
        finally:
            daemon.stop()
        result.haystacks["stdout"] = daemon.stdout_path.read_text(errors="replace")
        result.haystacks["stderr (logs)"] = daemon.stderr_path.read_text(errors="replace")
        for label, (status, body) in result.reload_answers.items():
            result.haystacks[f"POST /-/reload answer ({label})"] = f"{status}\n{body}"
        for label, doc in (("good", config), ("key in a wrong field", wrong_field)):
            write_yaml(path, doc)
            done = subprocess.run(
                [*SPEED_KINGS, "check-config", str(path)],
                capture_output=True,
                text=True,
                env=proc_env,
                timeout=60,
            )
            result.haystacks[f"check-config ({label})"] = done.stdout + done.stderr
        result.echo_keys_seen = set(echo.keys_seen)
    result.seconds = time.monotonic() - started
    print(f"\nsecrets sweep: {len(result.canaries)} providers, {result.seconds:.1f}s")
    yield result


# --- the assertions --------------------------------------------------------------------------
SPECIAL = ("echo-long", "echo-header", "openai-overloaded")  # asserted in their own tests


def ordinary(sweep: Sweep) -> list[Canary]:
    return [c for name, c in sweep.canaries.items() if name not in SPECIAL]


def test_every_provider_probed_and_every_key_was_sent(sweep: Sweep) -> None:
    """A sweep proves something only if the keys really went out: the simulator requires a
    key (its clean scenarios succeed), and the echo server saw each of its keys."""
    assert sweep.exit_code == 0
    assert set(sweep.outcomes) == set(sweep.canaries)
    for wire in WIRE_SUFFIX:
        assert sweep.outcomes[f"{wire}-ok"] == {"success"}, wire
    echoed = {name for name, c in sweep.canaries.items() if c.key in sweep.echo_keys_seen}
    assert echoed == {f"echo-{v}" for v in EchoServer.VARIANTS}
    assert sweep.rotated is not None and sweep.rotated.key in sweep.echo_keys_seen
    faults = {
        o for name, seen in sweep.outcomes.items() if name.startswith("openai-") for o in seen
    }
    assert {"rate_limited", "overloaded", "http_error", "timeout", "protocol_error"} <= faults


def test_no_key_in_logs(sweep: Sweep) -> None:
    found = sweep.search(ordinary(sweep), where="std")
    assert not found, "\n".join(found)


def test_no_key_in_metrics_pages_or_api(sweep: Sweep) -> None:
    found = sweep.search(ordinary(sweep), where="GET")
    assert not found, "\n".join(found)


def test_echoed_keys_show_redacted(sweep: Sweep) -> None:
    for variant in ("json", "text", "stream", "anthropic", "gemini"):
        error = sweep.last_errors[f"echo-{variant}"]
        assert REDACTED in error, (variant, "no [REDACTED] in the probe's error")
    assert "Incorrect API key provided: [REDACTED]" in sweep.last_errors["echo-json"]


def test_rotated_key_file_never_shows(sweep: Sweep) -> None:
    """After a key file changes and the config reloads, the new key (unknown at start,
    shaped like no provider's key) is redacted too."""
    assert sweep.rotated is not None
    found = leaks(sweep.haystacks, [sweep.rotated])
    assert not found, "\n".join(found)


def test_reload_errors_with_pasted_keys(sweep: Sweep) -> None:
    """The key pasted as `api_key_env` (value) or under an unknown `api_key:`: the reload
    fails, says why, and never quotes the key."""
    status, body = sweep.reload_answers["pasted key, POST"]
    assert status == 500
    assert "api_key_env: not an environment variable name (value not shown" in body
    assert "unknown key 'api_key'" in body
    found = sweep.search(ordinary(sweep), where="reload")
    assert not found, "\n".join(found)


def test_check_config_output(sweep: Sweep) -> None:
    found = sweep.search(ordinary(sweep), where="check-config")
    assert not found, "\n".join(found)


def test_clipped_echo(sweep: Sweep) -> None:
    """A key that the error-detail clip cuts in half must still be redacted."""
    found = leaks(sweep.haystacks, [sweep.canaries["echo-long"]])
    assert not found, "\n".join(found)


def test_key_echoed_in_a_header(sweep: Sweep) -> None:
    """A provider's response headers are provider text too (x-request-id is kept)."""
    found = leaks(sweep.haystacks, [sweep.canaries["echo-header"]])
    assert not found, "\n".join(found)


def test_reload_error_with_the_key_in_a_wrong_field(sweep: Sweep) -> None:
    """The key pasted into another field (`base_url_env`): the reload error quotes the
    value, so the error must be redacted wherever the daemon shows it."""
    status, _ = sweep.reload_answers["key in a wrong field, POST"]
    assert status == 500
    found = sweep.search([sweep.canaries["openai-overloaded"]], where="")
    found = [f for f in found if "check-config" not in f]
    assert not found, "\n".join(found)


def test_check_config_with_the_key_in_a_wrong_field(sweep: Sweep) -> None:
    found = sweep.search([sweep.canaries["openai-overloaded"]], where="check-config")
    assert not found, "\n".join(found)


# Any canary shape above with its random part: what must never be in pytest's output.
CANARY_TEXT = re.compile(r"canary[._-]?[0-9a-f]{6,}", re.IGNORECASE)


FORCE_FAILURE = "SPEED_KINGS_SWEEP_FORCE_FAILURE"

if os.environ.get(FORCE_FAILURE) == "1":  # only inside the self-check below

    def test_forced_failure_report(sweep: Sweep) -> None:
        """Fails on purpose, comparing against everything the daemon emitted, so pytest's
        failure report (with -vv introspection) is exercised on sweep data."""
        found = leaks(sweep.haystacks, list(sweep.canaries.values()))
        assert found == ["forced failure"], "forced failure of the secrets sweep"


def test_pytest_output_never_shows_a_key(tmp_path: Path) -> None:
    """This module's own output on a failing run (assertion messages, fixture values,
    tracebacks): one test fails on purpose, so every report path is exercised, and no
    canary may be in what pytest prints."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", __file__, "-vv", "-rA",
         "-p", "no:cacheprovider", "-k", "not pytest_output", "--basetemp", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, FORCE_FAILURE: "1"},
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert "1 failed" in output and "passed" in output, output[-3000:]
    assert "forced failure of the secrets sweep" in output, output[-3000:]
    shown = len(CANARY_TEXT.findall(output))
    assert shown == 0, f"{shown} canaries in pytest's output (not shown here)"
