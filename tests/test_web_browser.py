"""The status page as a real headless Chromium renders it (Debian package `chromium`)."""

from __future__ import annotations

import asyncio
import shutil
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from speed_kings.status import ProviderRow
from speed_kings.web import WebServer
from tests.fake_status import FakeStatus, busy_snapshot

CHROMIUM = shutil.which("chromium")
SCREENSHOT_COPY = Path("/tmp/speed-kings-status.png")
TIMEOUT_SECONDS = 60.0
HOSTILE = "<script>alert(1)</script>\"'\n"

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium not installed (Debian package chromium)"
)


@pytest.fixture
async def url() -> AsyncIterator[str]:
    snap = busy_snapshot(demo=True)
    snap.providers.append(ProviderRow(HOSTILE, "GPU", "openai", "configured", False))
    server = WebServer(FakeStatus(snap), "127.0.0.1", 0)
    base = await server.start()
    try:
        yield base + "/"
    finally:
        await server.stop()


async def chromium(tmp_path: Path, *args: str) -> bytes:
    """Runs headless Chromium (offline, throwaway profile) and returns its stdout. The server
    shares this event loop, so the browser must be awaited, not run blocking."""
    assert CHROMIUM is not None
    flags = [
        "--headless",
        "--no-sandbox",  # tests run as root in containers
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    proc = await asyncio.create_subprocess_exec(
        CHROMIUM,
        *flags,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT_SECONDS)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        pytest.fail(f"chromium took longer than {TIMEOUT_SECONDS}s")
    assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
    return out


async def test_rendered_dom_shows_providers_and_results(url: str, tmp_path: Path) -> None:
    dom = (await chromium(tmp_path, "--dump-dom", url)).decode()
    for name in ("cerebras", "groq", "sambanova", "openai", "local"):
        assert name in dom
    assert "Simulated providers: nothing here is a real measurement" in dom
    assert '<span class="outcome outcome-ok">success</span>' in dom
    assert ">87.1</td>" in dom  # cerebras TTFT, ms
    assert "stalled 30.0s after 12 chunks" in dom
    # The hostile provider name stayed text: the browser built no script element from it.
    assert "<script" not in dom
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom


async def test_screenshot_is_a_real_page(url: str, tmp_path: Path) -> None:
    shot = tmp_path / "page.png"
    await chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,2000", url)
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])  # IHDR
    assert (width, height) == (1280, 2000)
    assert len(data) > 30_000  # a blank or error page compresses far below this
    shutil.copyfile(shot, SCREENSHOT_COPY)  # for a human to look at
