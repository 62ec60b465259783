"""`speed_kings.web` over real loopback HTTP: every route, escaping, caps, access logging."""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import logging
import re
from collections.abc import AsyncIterator, Mapping, MutableMapping
from typing import Any

import aiohttp
import pytest
import structlog

from speed_kings.result import Outcome
from speed_kings.status import BudgetRow, CooldownRow, ProviderRow
from speed_kings.web import WebServer
from speed_kings.web_page import fmt_dollars, fmt_duration, fmt_ms
from tests.fake_status import METRICS_TYPE, FakeStatus, busy_snapshot, empty_snapshot, probe

HOSTILE = "<script>alert(1)</script>\"'\n"
HOSTILE_ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#x27;"


@pytest.fixture
def fake() -> FakeStatus:
    return FakeStatus(busy_snapshot())


@pytest.fixture
async def url(fake: FakeStatus) -> AsyncIterator[str]:
    server = WebServer(fake, "127.0.0.1", 0)
    base = await server.start()
    try:
        yield base
    finally:
        await server.stop()


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s:
        yield s


async def fetch(
    client: aiohttp.ClientSession, method: str, url: str
) -> tuple[int, str, aiohttp.ClientResponse]:
    async with client.request(method, url) as resp:
        return resp.status, await resp.text(), resp


async def page(client: aiohttp.ClientSession, url: str) -> str:
    status, text, resp = await fetch(client, "GET", url + "/")
    assert status == 200
    assert resp.content_type == "text/html"
    return text


def section(html: str, anchor: str) -> str:
    start = html.index(f'<section id="{anchor}">')
    return html[start : html.index("</section>", start)]


# --- plain endpoints ------------------------------------------------------------------------
async def test_start_returns_the_bound_port(url: str) -> None:
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
    assert not url.endswith(":0")


async def test_metrics_passes_body_and_content_type(
    url: str, client: aiohttp.ClientSession
) -> None:
    status, text, resp = await fetch(client, "GET", url + "/metrics")
    assert status == 200
    assert resp.headers["Content-Type"] == METRICS_TYPE
    assert text == "speedkings_build_info 1\n"


@pytest.mark.parametrize("encoding", ["identity", "gzip", "gzip, deflate, br"])
async def test_metrics_streams_every_chunk_and_gzips_when_asked(
    fake: FakeStatus, url: str, encoding: str
) -> None:
    chunks = [f'speedkings_x{{n="{i}"}} {i}.0\n'.encode() * 500 for i in range(40)]
    fake.metrics = (iter(chunks), METRICS_TYPE)  # type: ignore[assignment]
    async with (
        aiohttp.ClientSession(auto_decompress=False) as raw_client,
        raw_client.get(url + "/metrics", headers={"Accept-Encoding": encoding}) as resp,
    ):
        assert resp.status == 200
        body = await resp.read()
    gzipped = encoding != "identity"
    assert resp.headers.get("Content-Encoding") == ("gzip" if gzipped else None)
    assert resp.headers["Vary"] == "Accept-Encoding"
    assert (gzip.decompress(body) if gzipped else body) == b"".join(chunks)
    if gzipped:
        assert len(body) < len(b"".join(chunks)) / 10


async def test_scraper_hanging_up_mid_stream_is_not_an_error(fake: FakeStatus) -> None:
    events: list[dict[str, Any]] = []

    def collect(_: Any, method: str, event: MutableMapping[str, Any]) -> Mapping[str, Any]:
        events.append({**event, "level": method})
        raise structlog.DropEvent

    logger = structlog.wrap_logger(
        None,
        processors=[collect],
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
    )
    # 64 MiB in 256 KiB chunks: far more than the socket buffers hold, so the server is
    # still writing when the client goes.
    chunk = b"speedkings_x 1.0\n" * (256 * 1024 // 17)
    fake.metrics = ((chunk for _ in range(256)), METRICS_TYPE)  # type: ignore[assignment]
    server = WebServer(fake, "127.0.0.1", 0, logger=logger)
    base = await server.start()
    try:
        host, port = base.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: identity\r\n\r\n")
        await writer.drain()
        assert (await reader.readexactly(12)).startswith(b"HTTP/1.1 200")
        writer.transport.abort()  # hang up with most of the body unsent
        fake.metrics = ([b"speedkings_build_info 1\n"], METRICS_TYPE)
        async with (
            aiohttp.ClientSession() as client,
            client.get(base + "/metrics") as resp,
        ):
            assert resp.status == 200
            assert await resp.text() == "speedkings_build_info 1\n"
    finally:
        await server.stop()
    aborted = [e for e in events if e["event"] == "metrics_scrape_aborted"]
    assert aborted and aborted[0]["level"] == "debug", events
    assert all(e["level"] == "debug" for e in events), events


async def test_healthz(url: str, client: aiohttp.ClientSession) -> None:
    status, text, resp = await fetch(client, "GET", url + "/healthz")
    assert (status, text, resp.content_type) == (200, "ok", "text/plain")


async def test_readyz_503_with_reason_then_200(
    fake: FakeStatus, url: str, client: aiohttp.ClientSession
) -> None:
    fake.readiness = (False, "scheduler not started")
    status, text, resp = await fetch(client, "GET", url + "/readyz")
    assert (status, text, resp.content_type) == (503, "scheduler not started", "text/plain")
    fake.readiness = (True, "")
    status, text, _ = await fetch(client, "GET", url + "/readyz")
    assert (status, text) == (200, "ready")


async def test_unknown_path_is_plain_404(url: str, client: aiohttp.ClientSession) -> None:
    status, text, resp = await fetch(client, "GET", url + "/nope")
    assert status == 404
    assert resp.content_type == "text/plain"
    assert "Not Found" in text


# --- reload ---------------------------------------------------------------------------------
async def test_reload_ok(fake: FakeStatus, url: str, client: aiohttp.ClientSession) -> None:
    status, text, _ = await fetch(client, "POST", url + "/-/reload")
    assert (status, text, fake.reload_calls) == (200, "configuration reloaded", 1)


async def test_reload_invalid_config_is_500_with_message(
    fake: FakeStatus, url: str, client: aiohttp.ClientSession
) -> None:
    fake.reload_result = (False, "config.yaml: providers.groq.wire: unknown wire 'grpc'")
    status, text, _ = await fetch(client, "POST", url + "/-/reload")
    assert status == 500
    assert text == "config.yaml: providers.groq.wire: unknown wire 'grpc'"
    assert fake.reload_calls == 1


async def test_reload_that_raises_is_500(
    fake: FakeStatus, url: str, client: aiohttp.ClientSession
) -> None:
    fake.reload_error = RuntimeError("boom")
    status, text, _ = await fetch(client, "POST", url + "/-/reload")
    assert status == 500
    assert "boom" in text


async def test_reload_by_get_is_405_and_does_not_reload(
    fake: FakeStatus, url: str, client: aiohttp.ClientSession
) -> None:
    status, text, resp = await fetch(client, "GET", url + "/-/reload")
    assert status == 405
    assert resp.headers["Allow"] == "POST"
    assert "POST" in text
    assert fake.reload_calls == 0


# --- JSON -----------------------------------------------------------------------------------
async def test_api_probes_is_the_snapshot_lists(
    fake: FakeStatus, url: str, client: aiohttp.ClientSession
) -> None:
    async with client.get(url + "/api/probes") as resp:
        assert resp.status == 200
        assert resp.content_type == "application/json"
        body = await resp.json()
    assert body == {
        "last_results": fake.status.last_results,
        "recent_probes": fake.status.recent_probes,
    }


async def test_api_status_is_the_whole_snapshot(
    fake: FakeStatus, url: str, client: aiohttp.ClientSession
) -> None:
    async with client.get(url + "/api/status") as resp:
        assert resp.status == 200
        body = await resp.json()
    runtime = body.pop("runtime")
    assert body == dataclasses.asdict(fake.status)
    # The process's own counts, for leak watching (tests/test_daemon_faults.py).
    assert runtime["asyncio_tasks"] >= 1 and runtime["threads"] >= 1
    assert runtime["gc_objects"] > 1000
    assert runtime["open_fds"] >= runtime["sockets"] >= 1
    assert runtime["rss_bytes"] > 1_000_000


# --- the page -------------------------------------------------------------------------------
async def test_page_shows_every_section(url: str, client: aiohttp.ClientSession) -> None:
    html = await page(client, url)
    assert '<meta http-equiv="refresh" content="15">' in html
    assert "0.1.0" in html and "1h 2m" in html  # version, uptime
    assert "/etc/speed-kings/config.yaml" in html
    for name in ("cerebras", "groq", "sambanova", "openai", "local"):
        assert f"<td>{name}" in section(html, "providers")
    assert "not configured: set OPENAI_API_KEY" in html
    assert '<span class="tag sim">simulated</span>' in section(html, "providers")
    for href in ("/metrics", "/api/probes", "/healthz", "/readyz"):
        assert f'href="{href}"' in html
    assert "Simulated providers" not in html


async def test_page_last_results(url: str, client: aiohttp.ClientSession) -> None:
    results = section(await page(client, url), "last-results")
    assert '<span class="outcome outcome-ok">success</span>' in results
    assert '<span class="outcome outcome-warn">rate_limited</span>' in results
    assert ">87.1</td>" in results  # TTFT ms
    assert ">97.1</td>" in results  # first answer ms
    assert ">254.0</td>" in results  # tok/s: (128 - 1) / 0.5 s
    assert "42 / 128 (est.)" in results and "42 / 128<" in results
    assert "$0.0000123" in results
    assert '2025-12-31T23:59:56Z <span class="ago">4s ago</span>' in results
    assert "1m 1s ago" in results


async def test_page_budget_and_cooldowns(url: str, client: aiohttp.ClientSession) -> None:
    html = await page(client, url)
    budget = section(html, "budget")
    assert "$0.42 / $1.00" in budget and "42.0%" in budget
    assert '<span class="bar bad"><i style="width:92.5%">' in budget  # 18.5 of 20
    assert "no cap" in budget
    cooldowns = section(html, "cooldowns")
    assert "2026-01-01T00:00:29Z" in cooldowns and "29s" in cooldowns
    assert "429 Retry-After: 30" in cooldowns


async def test_page_recent_probes_show_full_error_detail(
    url: str, client: aiohttp.ClientSession
) -> None:
    recent = section(await page(client, url), "recent-probes")
    assert "stalled 30.0s after 12 chunks" in recent
    assert "&lt;b&gt;upstream&lt;/b&gt;}\nline two of the detail" in recent
    assert '<span class="outcome outcome-bad">timeout</span>' in recent
    assert ">429</td>" in recent


async def test_page_empty_states(fake: FakeStatus, url: str, client: aiohttp.ClientSession) -> None:
    fake.status = empty_snapshot()
    html = await page(client, url)
    assert "no providers configured" in html
    assert section(html, "last-results").count("no probes yet") == 1
    assert section(html, "recent-probes").count("no probes yet") == 1
    assert "no budget caps configured" in html
    assert "no provider is cooling down" in html
    assert "<table>" not in html


async def test_page_demo_banner_and_reload_error(
    fake: FakeStatus, url: str, client: aiohttp.ClientSession
) -> None:
    fake.status = empty_snapshot(
        demo=True, last_reload_ok=False, last_reload_error="bad <yaml> at line 3"
    )
    html = await page(client, url)
    assert "Simulated providers: nothing here is a real measurement" in html
    assert "Last reload failed (old config kept): bad &lt;yaml&gt; at line 3" in html
    assert "last reload <b>failed</b>" in html


async def test_hostile_text_is_escaped_everywhere(
    fake: FakeStatus, url: str, client: aiohttp.ClientSession
) -> None:
    hostile_probe = probe(
        HOSTILE, model=HOSTILE, prompt=HOSTILE, error="<img src=x onerror=alert(1)>"
    )
    hostile_probe["outcome"] = HOSTILE
    hostile_probe["time_to_first_token_seconds"] = HOSTILE
    fake.status = empty_snapshot(
        version=HOSTILE,
        config_path=HOSTILE,
        last_reload_ok=False,
        last_reload_error=HOSTILE,
        providers=[ProviderRow(HOSTILE, HOSTILE, HOSTILE, HOSTILE, True, simulated=True)],
        last_results=[hostile_probe],
        recent_probes=[hostile_probe],
        budget=[BudgetRow(HOSTILE, HOSTILE, 1.0, 0.5)],
        cooldowns=[CooldownRow(HOSTILE, fake.status.now + 5, HOSTILE)],
    )
    html = await page(client, url)
    assert "<script" not in html and "<img" not in html
    assert HOSTILE_ESCAPED in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "outcome-unknown" in html  # an unknown outcome never becomes a class name
    assert html.count(HOSTILE_ESCAPED) >= 14


async def test_page_has_no_script_and_a_strict_csp(url: str, client: aiohttp.ClientSession) -> None:
    async with client.get(url + "/") as resp:
        html = await resp.text()
        csp = resp.headers["Content-Security-Policy"]
    assert "<script" not in html
    assert "default-src 'none'" in csp
    assert "http://" not in html and "https://" not in html  # nothing external to load


async def test_recent_probes_capped_at_100_newest_first_as_given(
    fake: FakeStatus, url: str, client: aiohttp.ClientSession
) -> None:
    probes = [probe(f"prov-{i:03d}-x", finished_ago=i) for i in range(120)]
    fake.status = empty_snapshot(recent_probes=probes)
    recent = section(await page(client, url), "recent-probes")
    assert recent.count("<tr>") == 101  # header + 100
    positions = [recent.index(f"prov-{i:03d}-x") for i in range(100)]
    assert positions == sorted(positions)
    assert "prov-100-x" not in recent


# --- access log -----------------------------------------------------------------------------
async def test_access_log_is_debug_and_never_has_headers(
    fake: FakeStatus, client: aiohttp.ClientSession
) -> None:
    events: list[dict[str, Any]] = []

    def collect(_: Any, method: str, event: MutableMapping[str, Any]) -> Mapping[str, Any]:
        events.append({**event, "level": method})
        raise structlog.DropEvent

    logger = structlog.wrap_logger(
        None,
        processors=[collect],
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
    )
    server = WebServer(fake, "127.0.0.1", 0, logger=logger)
    base = await server.start()
    try:
        headers = {"Authorization": "Bearer sk-secret-123"}
        async with client.get(base + "/healthz?key=sk-query", headers=headers) as resp:
            assert resp.status == 200
        async with client.get(base + "/missing", headers=headers) as resp:
            assert resp.status == 404
    finally:
        await server.stop()
    assert [(e["level"], e["event"], e["path"], e["status"]) for e in events] == [
        ("debug", "http_request", "/healthz", 200),
        ("debug", "http_request", "/missing", 404),
    ]
    assert "sk-" not in repr(events)


async def test_stop_is_idempotent_and_start_twice_fails(fake: FakeStatus) -> None:
    server = WebServer(fake, "127.0.0.1", 0)
    await server.start()
    with pytest.raises(RuntimeError):
        await server.start()
    await server.stop()
    await server.stop()


# --- formatting -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (7.9, "7s"), (61, "1m 1s"), (3725, "1h 2m"), (90000, "1d 1h"), (-5, "0s")],
)
def test_fmt_duration(seconds: float, text: str) -> None:
    assert fmt_duration(seconds) == text


def test_number_formatting_rejects_non_numbers() -> None:
    assert fmt_ms(0.0871) == "87.1" and fmt_ms(1.5) == "1500"
    assert fmt_ms("12") == fmt_ms(True) == fmt_ms(float("nan")) == "—"
    assert fmt_dollars(0.0000123) == "$0.0000123"
    assert fmt_dollars(0.42) == "$0.42" and fmt_dollars(0.5) == "$0.50"
    assert fmt_dollars(0.0123) == "$0.0123" and fmt_dollars(0.001) == "$0.001"
    assert fmt_dollars(2.5) == "$2.50" and fmt_dollars(0) == "$0.00"


def test_outcomes_all_have_a_colour() -> None:
    from speed_kings.web_page import outcome_badge

    for outcome in Outcome:
        assert "outcome-unknown" not in outcome_badge(outcome.value)
