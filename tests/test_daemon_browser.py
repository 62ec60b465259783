"""The real exporter's status page, as a real headless Chromium renders it (Debian package
`chromium`): providers and last results, after real probes of the simulator."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.procs import clean_environ, daemon_process, simulator_process, wait_for

CHROMIUM = shutil.which("chromium")
TIMEOUT_SECONDS = 60.0
PROVIDERS = {"browser-fast": "fast", "browser-groq": "groq"}  # name -> simulator profile

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium not installed (Debian package chromium)"
)


def dump_dom(url: str, tmp_path: Path) -> str:
    """The DOM after load, from headless Chromium (offline, throwaway profile)."""
    assert CHROMIUM is not None
    done = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",  # tests run as root in containers
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'chromium-profile'}",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        timeout=TIMEOUT_SECONDS,
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    return done.stdout.decode()


def ms(seconds: float) -> str:
    """How the page prints a time in milliseconds."""
    value = seconds * 1000
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def test_status_page_in_chromium_shows_providers_and_last_results(tmp_path: Path) -> None:
    with simulator_process("--seed", "13") as sim:
        config = tmp_path / "speed-kings.yaml"
        doc: dict[str, Any] = {
            "state_dir": str(tmp_path / "state"),
            "log": {"format": "json"},
            "providers": {
                name: {
                    "base_url": f"{sim}/{profile}/v1",
                    "wire": "openai",
                    "hardware": "GPU",
                    "api_key_env": "SIM_KEY",
                    "default_price": {
                        "input": 0.5,
                        "output": 1.5,
                        "checked": date(2026, 11, 22),
                        "source": "test",
                    },
                }
                for name, profile in PROVIDERS.items()
            },
            # One round at start, then none for an hour: the page holds still while we look.
            "comparisons": [
                {
                    "name": "browser",
                    "model": "llama-3.1-8b",
                    "providers": list(PROVIDERS),
                    "schedule": {"interval": "1h"},
                    "max_tokens": 40,
                }
            ],
        }
        config.write_text(yaml.safe_dump(doc, sort_keys=False))
        env = clean_environ(SIM_KEY="sim-key")
        with daemon_process("--config", str(config), out_dir=tmp_path, env=env) as daemon:

            def last_results() -> list[dict[str, Any]]:
                results: list[dict[str, Any]] = json.loads(daemon.get("/api/probes"))[
                    "last_results"
                ]
                return results if len(results) == len(PROVIDERS) else []

            results = wait_for(last_results, timeout=30, what="a probe of each provider")
            dom = dump_dom(daemon.url + "/", tmp_path)

    assert "<h1>Speed Kings</h1>" in dom
    for name in PROVIDERS:
        assert name in dom
    for result in results:
        assert result["outcome"] == "success", result
        ttft = result["time_to_first_token_seconds"]
        assert ttft is not None and ttft > 0
        assert f'<td class="num">{ms(ttft)}</td>' in dom, (ms(ttft), dom)
    last = dom[dom.index('<section id="last-results">') :]
    last = last[: last.index("</section>")]
    assert last.count('<span class="outcome outcome-ok">success</span>') == len(PROVIDERS)
    for name in PROVIDERS:
        assert f"<td>{name}</td>" in last
    assert "no probes yet" not in dom
