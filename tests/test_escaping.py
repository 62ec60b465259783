"""Hostile text stays text: on the status page, in /metrics, in the JSON API.

Provider text (error bodies, mid-stream error events, request ids), names the config lets
through (raw model ids with `/:@+`), the config file's own path and a failed reload's
message all reach the page. Each is checked three ways:
- the page's markup is only ours: an HTML parser sees no element or attribute the page
  does not make itself (no <script>, no <img onerror>, no extra row or cell);
- the text round-trips: what the parser reads back (entities decoded) equals the string
  the daemon holds (from /api/probes and /api/status), character for character;
- /metrics parses with prometheus_client's parser, label values come back exactly, and
  `promtool check metrics` accepts it (when promtool is installed).

The page renderer gets a hypothesis property over every string field of a snapshot; the
rest runs through a real `speed-kings run` against a provider server here that answers
with hostile text.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from datetime import date
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from speed_kings.metrics import Metrics
from speed_kings.result import Outcome, ProbeResult, TokenUsage
from speed_kings.status import BudgetRow, CooldownRow, ProviderRow, StatusSnapshot
from speed_kings.web_page import render_page
from tests.procs import DaemonProcess, clean_environ, http, wait_for
from tests.threaded_server import ThreadedServer

NOW = 1_767_225_600.0
SCRIPT = '<script>alert("x")</script>'
HOSTILE = (
    SCRIPT,
    '"><img src=x onerror=alert(1)>',
    "</td></tr></table><h1>injected</h1><table><tr><td>",
    'it\'s "quoted" and \\back\\slashed\\',
    "&lt;already-escaped&gt; &amp; &#x27; &quot;",
    "line one\nline two\r\nline three\tand a tab",
    "unicode: Ünïcödé 🚀 \u202eright-to-left\u202c \u2028 zero\u200bwidth",
    "template {{x}} ${jndi:ldap://x} %s %n {0}",
    "nul \x00 bel \x07 esc \x1b[31m",
)


# --- the page's own markup ------------------------------------------------------------------
# Every element and attribute `web_page.render_page` writes; anything else came from data.
TAGS = {
    "html", "head", "meta", "title", "style", "body", "header", "h1", "div", "span", "b", "nav",
    "a", "main", "section", "h2", "p", "table", "thead", "tbody", "tr", "th", "td", "i",
}  # fmt: skip
ATTRIBUTES = {"lang", "charset", "http-equiv", "content", "name", "href", "class", "id", "style"}
HREFS = {"/metrics", "/api/probes", "/api/status", "/healthz", "/readyz"}


class Page(HTMLParser):
    """Elements, attributes and text of a page; text per element class, entities decoded."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.text: list[str] = []
        self.cells: dict[str, list[str]] = {}  # td class -> texts, in order
        self.banner: list[str] = []  # the reload-error banner's text
        self.ledger_banner: list[str] = []  # the ledger-error banner's text
        self._stack: list[tuple[str, str]] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))
        if tag in ("meta", "br"):
            return  # void elements
        cls = dict(attrs).get("class") or ""
        self._stack.append((tag, cls))
        if tag == "td":
            self.cells.setdefault(cls, []).append("")

    def handle_endtag(self, tag: str) -> None:
        while self._stack:
            open_tag, _ = self._stack.pop()
            if open_tag == tag:
                break

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        for tag, cls in reversed(self._stack):
            if tag == "td":
                self.cells[cls][-1] += data
                break
        if any(cls == "reload-error" for _, cls in self._stack):
            self.banner.append(data)
        if any(cls == "ledger-error" for _, cls in self._stack):
            self.ledger_banner.append(data)

    def all_text(self) -> str:
        return "".join(self.text)


def check_markup(page: Page) -> None:
    for tag, attrs in page.tags:
        assert tag in TAGS, f"an element the page does not make: <{tag} {attrs}>"
        for name, value in attrs:
            assert name in ATTRIBUTES, f"an attribute the page does not set: {name}={value!r}"
            if name == "href":
                assert value in HREFS, value
            if name == "style":
                assert tag == "i" and value is not None and value.startswith("width:"), value
    titles = [t for t, _ in page.tags if t in ("h1", "table", "script", "img")]
    assert titles.count("h1") == 1, "an injected heading"
    assert "script" not in titles and "img" not in titles


# --- 1. the renderer, every field hostile ----------------------------------------------------
hostile_text = st.one_of(
    st.sampled_from(HOSTILE), st.text(max_size=60), st.text(alphabet="<>&\"'/\\=\n ", max_size=30)
)
weird_number = st.one_of(st.none(), st.floats(), st.integers(), hostile_text, st.booleans())


@st.composite
def hostile_probe(draw: st.DrawFn) -> dict[str, Any]:
    keys = (
        "provider", "model", "prompt", "outcome", "error", "request_id", "provider_model",
        "wire", "nonce",
    )  # fmt: skip
    entry: dict[str, Any] = {key: draw(hostile_text) for key in keys}
    for key in (
        "time_to_first_token_seconds", "time_to_first_answer_token_seconds",
        "output_tokens_per_second", "request_duration_seconds", "input_tokens",
        "output_tokens", "cost_usd", "finished_at", "http_status", "tokens_estimated",
    ):  # fmt: skip
        entry[key] = draw(weird_number)
    return entry


@st.composite
def hostile_snapshots(draw: st.DrawFn) -> StatusSnapshot:
    text = hostile_text
    return StatusSnapshot(
        version=draw(text),
        started_at=NOW - 100,
        now=NOW,
        config_path=draw(text),
        demo=draw(st.booleans()),
        last_reload_ok=False,
        last_reload_error=draw(text),
        providers=[
            ProviderRow(draw(text), draw(text), draw(text), draw(text), draw(st.booleans()))
            for _ in range(draw(st.integers(0, 2)))
        ],
        last_results=draw(st.lists(hostile_probe(), max_size=2)),
        recent_probes=draw(st.lists(hostile_probe(), max_size=3)),
        budget=[BudgetRow(draw(text), draw(text), 1.0, 0.5)],
        cooldowns=[CooldownRow(draw(text), NOW + 60, draw(text))],
        ledger_error=draw(st.one_of(st.none(), text)),
    )


@settings(max_examples=150, deadline=None, derandomize=True)
@given(snapshot=hostile_snapshots())
def test_page_escapes_every_field(snapshot: StatusSnapshot) -> None:
    html = render_page(snapshot)
    page = Page(html)
    check_markup(page)
    # One row per entry, whatever the entries say.
    rows = [t for t, _ in page.tags if t == "tr"]
    sections = (snapshot.providers, snapshot.last_results, snapshot.recent_probes,
                snapshot.budget, snapshot.cooldowns)  # fmt: skip
    header_rows = sum(1 for section in sections if section)
    want = (
        len(snapshot.providers) + len(snapshot.last_results) + len(snapshot.recent_probes)
        + len(snapshot.budget) + len(snapshot.cooldowns) + header_rows
    )  # fmt: skip
    assert len(rows) == want
    text = page.all_text()
    for value in (snapshot.config_path, snapshot.version, snapshot.cooldowns[0].reason):
        assert value in text
    assert page.cells.get("err", []) == [p["error"] or "" for p in snapshot.recent_probes]
    assert "".join(page.banner).endswith(snapshot.last_reload_error or "")
    if snapshot.ledger_error:
        assert "".join(page.ledger_banner).endswith(snapshot.ledger_error)
    else:
        assert not page.ledger_banner


# --- 2. /metrics labels, straight through the families ----------------------------------------
def test_metrics_label_values_round_trip() -> None:
    """Label values the config cannot produce (it only allows names like `a-b_c`), fed to
    the metric families directly: the exposition still parses and gives them back."""
    registry = CollectorRegistry()
    metrics = Metrics(registry, version='1.0"\\\n<x>')
    cases = [(f"p{i}{h}", f"m{i}{h}", f"q{i}{h}") for i, h in enumerate(HOSTILE)]
    cases.append(("x" * 5000, "y" * 5000, "z" * 5000))
    for provider, model, prompt in cases:
        metrics.declare(provider, model, [prompt], "GPU", "openai", False)
        result = ProbeResult(
            provider=provider,
            model=model,
            provider_model=model,
            prompt=prompt,
            wire="openai",
            nonce="n",
            started_at=NOW,
            outcome=Outcome.SUCCESS,
            http_status=200,
            time_to_headers=0.1,
            time_to_first_token=0.2,
            time_to_first_answer_token=0.2,
            time_to_last_token=0.7,
            request_duration=0.75,
            tokens=TokenUsage(input=10, output=50, source="reported"),
            cost_usd=0.0001,
        )
        metrics.observe(result, hour=3, finished_at=NOW)
    text = b"".join(metrics.render_chunks()).decode()
    seen: set[tuple[str, str, str]] = set()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if {"provider", "model", "prompt"} <= set(s.labels):
                seen.add((s.labels["provider"], s.labels["model"], s.labels["prompt"]))
            if s.name == "speedkings_build_info":
                assert s.labels["version"] == '1.0"\\\n<x>'
    assert seen == set(cases)
    promtool(text)


def promtool(text: str) -> None:
    if shutil.which("promtool") is None:
        return  # the parser above is the check that always runs
    done = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    # promtool lints too (exit 3 for lint problems only): the exposition must parse.
    assert done.returncode in (0, 3), done.stdout + done.stderr
    assert "error while linting" not in done.stdout + done.stderr, done.stdout + done.stderr
    assert "text format parsing error" not in done.stdout + done.stderr, done.stderr


# --- 3. a real daemon against a hostile provider ------------------------------------------------
LONG = (SCRIPT + " ") * 3000  # ~90 kB: clipped to 300 characters by the exporter
VARIANTS = {
    # variant -> (status, body, content type, extra headers)
    "json": (400, {"error": {"message": HOSTILE[0] + " " + HOSTILE[3], "code": HOSTILE[1]}}),
    "text": (500, " | ".join(HOSTILE)),
    "html": (502, "<html><body><h1>502 Bad Gateway</h1><script>x()</script></body></html>"),
    "long": (400, {"error": {"message": LONG}}),
    "stream": (200, {"error": {"message": HOSTILE[2] + HOSTILE[5], "type": HOSTILE[4]}}),
    "header": (401, {"error": {"message": HOSTILE[6] + HOSTILE[7]}}),
}
REQUEST_ID = '<script>alert("rid")</script> "quoted" \\ end'
RAW_MODEL = "Org/Model-X:tag@v1+b.2_c"


class HostileServer(ThreadedServer):
    """An OpenAI-compatible provider per variant under `/{variant}/v1`; `ok` streams a
    real answer (for the raw model id's metrics), the others answer with hostile text."""

    def __init__(self) -> None:
        super().__init__()
        self.models_seen: set[str] = set()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.models_seen.add(body.get("model", ""))
        variant = request.match_info["variant"]
        if variant == "ok":
            return await self._stream(request, ok=True)
        status, payload = VARIANTS[variant]
        if variant == "stream":
            return await self._stream(request, ok=False, error=payload)
        headers = {"x-request-id": REQUEST_ID} if variant == "header" else {}
        if isinstance(payload, str):
            ctype = "text/html" if variant == "html" else "text/plain"
            return web.Response(status=status, text=payload, content_type=ctype, headers=headers)
        return web.json_response(payload, status=status, headers=headers)

    async def _stream(
        self, request: web.Request, *, ok: bool, error: Any = None
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)

        def event(doc: Any) -> bytes:
            return f"data: {json.dumps(doc)}\n\n".encode()

        await response.write(event({"choices": [{"delta": {"content": "<b>hi</b> "}}]}))
        if not ok:
            await response.write(event(error))
        else:
            for word in ("one ", "two ", "three"):
                await response.write(event({"choices": [{"delta": {"content": word}}]}))
            usage = {"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16}
            await response.write(event({"choices": [], "usage": usage}))
            await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/{variant}/v1/chat/completions", self._handle)


def hostile_config(server: str, state: Path) -> dict[str, Any]:
    price = {"input": 0, "output": 0, "checked": date(2026, 11, 22), "source": SCRIPT}
    providers: dict[str, Any] = {}
    comparisons: list[dict[str, Any]] = []
    for variant in ("ok", *VARIANTS):
        providers[f"evil-{variant}"] = {
            "display_name": SCRIPT,
            "base_url": f"{server}/{variant}/v1",
            "wire": "openai",
            "hardware": "GPU",
            # The id sent on the wire; a provider may echo it back in its error.
            "models": {"llama-3.1-8b": {"id": HOSTILE[1], "notes": SCRIPT}},
            "default_price": price,
            "notes": [SCRIPT],
        }
        comparisons.append(
            {
                "name": f"c-{variant}",
                "model": RAW_MODEL if variant == "ok" else "llama-3.1-8b",
                "providers": [f"evil-{variant}"],
                "prompts": ["p_1-x"],
                # Once at start, then not for an hour: the page holds still for the checks.
                "schedule": {"interval": "1h"},
                "max_tokens": 16,
            }
        )
    return {
        "state_dir": str(state),
        "log": {"format": "json"},
        "concurrency": 4,
        "defaults": {"timeout": "10s", "read_timeout": "5s", "connect_timeout": "2s"},
        "prompts": {"p_1-x": SCRIPT + " " + HOSTILE[3]},
        "providers": providers,
        "comparisons": comparisons,
    }


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One daemon, its config in a folder whose name is markup; every provider probed once.
    Yields what it served, captured before and after a reload that fails on hostile text."""
    base = tmp_path_factory.mktemp("escaping")
    folder = base / "x<script>alert(1)<" / "script>&\"quoted' \\ dir"
    folder.mkdir(parents=True)
    got: dict[str, Any] = {}
    with HostileServer() as server:
        config = hostile_config(server.url, base / "state")
        path = folder / "speed-kings.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        daemon = DaemonProcess(["--config", str(path)], out_dir=base, env=clean_environ())
        try:
            daemon.wait_healthy()
            want = {f"evil-{v}" for v in ("ok", *VARIANTS)}
            wait_for(
                lambda: {p["provider"] for p in daemon.probes()} >= want,
                timeout=60,
                what="a probe of every hostile provider",
            )
            got["config_path"] = str(path)
            got["page"] = daemon.get("/")
            got["probes"] = json.loads(daemon.get("/api/probes"))
            got["status"] = json.loads(daemon.get("/api/status"))
            got["metrics"] = daemon.metrics_text()
            got["models_seen"] = set(server.models_seen)
            # A reload that fails on hostile values: its message quotes them on the page.
            broken = dict(config, listen=SCRIPT)
            broken["providers"] = dict(config["providers"], **{'"><img src=x>': {}})
            path.write_text(yaml.safe_dump(broken, sort_keys=False))
            got["reload"] = http(daemon.url + "/-/reload", method="POST")
            got["page_after_reload"] = daemon.get("/")
            got["status_after_reload"] = json.loads(daemon.get("/api/status"))
            code, _ = daemon.terminate()
            got["exit"] = code
        finally:
            daemon.stop()
        got["output"] = daemon.output()
    yield got


def test_every_hostile_answer_was_recorded(hostile_run: dict[str, Any]) -> None:
    outcomes = {p["provider"]: p["outcome"] for p in hostile_run["probes"]["last_results"]}
    assert outcomes["evil-ok"] == "success"
    for variant in VARIANTS:
        assert outcomes[f"evil-{variant}"] != "success", variant
    assert HOSTILE[1] in hostile_run["models_seen"]  # the hostile model id went out as is
    assert hostile_run["exit"] == 0
    assert "Traceback" not in hostile_run["output"]


def test_status_page_markup_is_ours(hostile_run: dict[str, Any]) -> None:
    for key in ("page", "page_after_reload"):
        html: str = hostile_run[key]
        page = Page(html)
        check_markup(page)
        assert "<script" not in html.lower() and "<img" not in html.lower()
        assert "&lt;script&gt;" in html  # shown, as text


def test_provider_text_round_trips_on_the_page(hostile_run: dict[str, Any]) -> None:
    """Each recent probe's error as the page shows it (entities decoded) is exactly the
    error the daemon holds: escaped, not mangled, not dropped."""
    page = Page(hostile_run["page"])
    errors = [p["error"] or "" for p in hostile_run["probes"]["recent_probes"]]
    assert page.cells["err"] == errors
    by_provider = {p["provider"]: p for p in hostile_run["probes"]["last_results"]}
    json_error = by_provider["evil-json"]["error"]
    assert SCRIPT in json_error and HOSTILE[1] in json_error and HOSTILE[3] in json_error
    assert HOSTILE[2] in by_provider["evil-stream"]["error"]
    long_error = by_provider["evil-long"]["error"]
    assert len(long_error) <= 300 and long_error.endswith("…")
    # Line breaks from the provider collapse to spaces: one line per error, in logs too.
    assert all("\n" not in e and "\r" not in e for e in errors)
    assert by_provider["evil-header"]["request_id"] == REQUEST_ID
    # The model label: the raw id, exactly.
    assert by_provider["evil-ok"]["model"] == RAW_MODEL
    assert RAW_MODEL in page.cells[""]


def test_config_path_and_reload_error_escaped(hostile_run: dict[str, Any]) -> None:
    path = hostile_run["config_path"]
    assert hostile_run["status"]["config_path"] == path
    assert path in Page(hostile_run["page"]).all_text()
    status, _, body = hostile_run["reload"]
    assert status == 500 and "listen" in body and SCRIPT in body  # text/plain: as is
    error = hostile_run["status_after_reload"]["last_reload_error"]
    assert SCRIPT in error and '"><img src=x>' in error
    page = Page(hostile_run["page_after_reload"])
    assert "".join(page.banner).endswith(error)


def test_metrics_parse_and_labels_round_trip(hostile_run: dict[str, Any]) -> None:
    text: str = hostile_run["metrics"]
    labels = [
        s.labels
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.labels.get("provider", "").startswith("evil-")
    ]
    assert labels
    assert {"model": RAW_MODEL, "prompt": "p_1-x"}.items() <= next(
        lab for lab in labels if lab["provider"] == "evil-ok" and "prompt" in lab
    ).items()
    for lab in labels:
        assert SCRIPT not in "".join(lab.values())  # config names cannot carry markup
    promtool(text)


def test_markup_check_catches_injection() -> None:
    """The checks above can fail: unescaped text is caught."""
    injections = (SCRIPT, "<img src=x onerror=alert(1)>", '<b onclick="x()">x</b>',
                  '<a href="//evil">x</a>', "<h1>x</h1>")  # fmt: skip
    for injected in injections:
        html = f"<html><body><h1>Speed Kings</h1><p>{injected}</p></body></html>"
        with pytest.raises(AssertionError):
            check_markup(Page(html))
