"""`speed-kings simulate` as a real process: prints its URLs, serves, stops on SIGTERM."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import urllib.request

from click.testing import CliRunner

from speed_kings.simulator import PROFILES
from speed_kings.simulator.cli import simulate_command
from tests.procs import read_lines

LAUNCH = "from speed_kings.simulator.cli import simulate_command; simulate_command()"


def test_cli_serves_until_sigterm() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", LAUNCH, "--port", "0", "--seed", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        lines = read_lines(proc, "truth:")
        match = re.search(r"listening on (http://127\.0\.0\.1:\d+)", lines[0])
        assert match, lines
        url = match.group(1)
        assert any(re.fullmatch(rf"groq\s+openai\s+{url}/groq/v1", ln) for ln in lines)
        assert any(re.fullmatch(rf"ollama\s+ollama\s+{url}/ollama", ln) for ln in lines)
        assert any(re.fullmatch(rf"gemini\s+gemini\s+{url}/gemini/v1beta", ln) for ln in lines)
        assert any("@rate_limit" in ln for ln in lines)
        with urllib.request.urlopen(f"{url}/_sim/profiles", timeout=5) as resp:
            assert set(json.load(resp)) == set(PROFILES)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        proc.stderr.close()


def test_cli_help_and_bad_profile() -> None:
    runner = CliRunner()
    result = runner.invoke(simulate_command, ["--help"])
    assert result.exit_code == 0 and "--default-profile" in result.output
    result = runner.invoke(simulate_command, ["--default-profile", "nope"])
    assert result.exit_code == 2
