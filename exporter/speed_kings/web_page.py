"""The human status page at `/`: server-rendered HTML, no JavaScript, no external resources.

Every value taken from the snapshot goes through `esc` (provider text, error details and even
numbers that turn out not to be numbers are untrusted)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from html import escape
from itertools import pairwise
from typing import Any

from speed_kings.status import BudgetRow, CooldownRow, ProviderRow, StatusSnapshot

RECENT_LIMIT = 100
REFRESH_SECONDS = 15
DASH = "—"

# Outcome value -> CSS class; anything else renders as "outcome-unknown".
_OUTCOME_CLASS = {
    "success": "ok",
    "rate_limited": "warn",
    "overloaded": "warn",
    "http_error": "bad",
    "timeout": "bad",
    "connection_error": "bad",
    "protocol_error": "bad",
    "skipped_budget": "skip",
    "skipped_cooldown": "skip",
}

_CSS = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;
 color:#1d2330;background:#f5f6f8}
header{background:#1d2330;color:#fff;padding:12px 24px}
header h1{margin:0 0 4px;font-size:20px}
header .meta span{margin-right:20px;color:#c9cfdb}
header .meta b{color:#fff;font-weight:600}
nav{padding:8px 24px;background:#e4e7ec}
nav a{margin-right:16px;color:#1f5fbf}
main{padding:8px 24px 32px}
section{margin-top:18px}
h2{font-size:16px;margin:0 0 6px}
.demo{background:#ffe9a8;color:#5c4300;padding:8px 24px;font-weight:600;
 border-bottom:1px solid #e2c25a}
.reload-error,.ledger-error{background:#fbdada;color:#7a1010;padding:8px 24px;
 white-space:pre-wrap}
.scroll{overflow-x:auto}
table{border-collapse:collapse;background:#fff;min-width:50%;
 box-shadow:0 1px 2px rgba(0,0,0,.08)}
th,td{padding:4px 9px;border-bottom:1px solid #e4e7ec;text-align:left;vertical-align:top;
 white-space:nowrap}
th{background:#eef0f4;font-weight:600}
td.wrap{white-space:normal;max-width:360px}
#last-results .ago{display:block}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.when{white-space:nowrap;font-variant-numeric:tabular-nums}
.ago{color:#6b7385}
.empty{color:#6b7385;font-style:italic}
.tag{display:inline-block;padding:0 6px;border-radius:8px;font-size:12px;
 background:#e4e7ec;color:#414a5c}
.tag.sim{background:#ffe9a8;color:#5c4300}
.outcome{display:inline-block;padding:0 6px;border-radius:4px;font-weight:600;
 white-space:nowrap}
.outcome-ok{background:#d5f2dc;color:#135f2a}
.outcome-warn{background:#ffe6bf;color:#7a4a00}
.outcome-bad{background:#fbdada;color:#8a1414}
.outcome-skip{background:#e4e7ec;color:#414a5c}
.outcome-unknown{background:#e4e7ec;color:#1d2330}
.err{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px;white-space:pre-wrap;
 word-break:break-word;max-width:640px}
.bar{width:160px;height:10px;background:#e4e7ec;border-radius:5px;display:inline-block;
 vertical-align:middle;margin-right:6px;overflow:hidden}
.bar i{display:block;height:100%;background:#2f9e55}
.bar.warn i{background:#e59a1a}
.bar.bad i{background:#d33}
"""


# --- formatting -----------------------------------------------------------------------------
def esc(value: object) -> str:
    return escape(str(value), quote=True)


def _number(value: object) -> float | None:
    """A finite number, or None (bools and hostile strings are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def fmt_ms(seconds: object) -> str:
    v = _number(seconds)
    if v is None:
        return DASH
    ms = v * 1000
    return f"{ms:.0f}" if ms >= 100 else f"{ms:.1f}"


def fmt_float(value: object, digits: int = 1) -> str:
    v = _number(value)
    return DASH if v is None else f"{v:.{digits}f}"


def fmt_dollars(value: object) -> str:
    v = _number(value)
    if v is None:
        return DASH
    if v == 0 or abs(v) >= 1:
        return f"${v:.2f}"
    # Probes cost fractions of a cent: three significant digits, at least two decimals.
    digits = max(2, 2 - math.floor(math.log10(abs(v))))
    text = f"{v:.{digits}f}"
    while len(text.split(".")[1]) > 2 and text.endswith("0"):
        text = text[:-1]
    return f"${text}"


def fmt_duration(seconds: float) -> str:
    """The two largest units: 1d 2h, 3h 4m, 5m 6s, 7s."""
    days, rem = divmod(max(0, int(seconds)), 86400)
    hours, rem = divmod(rem, 3600)
    minutes, secs = divmod(rem, 60)
    parts = ((days, "d"), (hours, "h"), (minutes, "m"), (secs, "s"))
    for (count, unit), (next_count, next_unit) in pairwise(parts):
        if count:
            return f"{count}{unit} {next_count}{next_unit}"
    return f"{secs}s"


def fmt_iso(ts: object) -> str:
    v = _number(ts)
    if v is None:
        return DASH
    try:
        return datetime.fromtimestamp(v, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return DASH


def fmt_when(ts: object, now: float) -> str:
    """ISO UTC time plus how long ago, as HTML."""
    v = _number(ts)
    if v is None:
        return DASH
    ago = now - v
    rel = f"{fmt_duration(ago)} ago" if ago >= 0 else f"in {fmt_duration(-ago)}"
    return f'{esc(fmt_iso(v))} <span class="ago">{esc(rel)}</span>'


def outcome_badge(outcome: object) -> str:
    cls = _OUTCOME_CLASS.get(outcome, "unknown") if isinstance(outcome, str) else "unknown"
    return f'<span class="outcome outcome-{cls}">{esc(outcome if outcome else DASH)}</span>'


# --- building blocks ------------------------------------------------------------------------
def _table(headers: Sequence[str], rows: Iterable[str], empty: str) -> str:
    body = "".join(rows)
    if not body:
        return f'<p class="empty">{esc(empty)}</p>'
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return f'<div class="scroll">{table}</div>'


def _row(*cells: str) -> str:
    """Cells are already HTML (escaped by their caller)."""
    return "<tr>" + "".join(cells) + "</tr>"


def _td(text: object, cls: str = "") -> str:
    attr = f' class="{cls}"' if cls else ""
    return f"<td{attr}>{esc(text)}</td>"


def _td_html(html: str, cls: str = "") -> str:
    attr = f' class="{cls}"' if cls else ""
    return f"<td{attr}>{html}</td>"


def _section(anchor: str, title: str, content: str) -> str:
    return f'<section id="{anchor}"><h2>{esc(title)}</h2>{content}</section>'


# --- sections -------------------------------------------------------------------------------
def _header(s: StatusSnapshot) -> str:
    reload_state = "ok" if s.last_reload_ok else "failed"
    meta = (
        f"<span>version <b>{esc(s.version)}</b></span>"
        f"<span>uptime <b>{esc(fmt_duration(s.now - s.started_at))}</b></span>"
        f"<span>config <b>{esc(s.config_path)}</b></span>"
        f"<span>last reload <b>{esc(reload_state)}</b></span>"
        f"<span>now <b>{esc(fmt_iso(s.now))}</b></span>"
    )
    html = f'<header><h1>Speed Kings</h1><div class="meta">{meta}</div></header>'
    if s.demo:
        html += (
            '<div class="demo">DEMO: Simulated providers: nothing here is a real measurement</div>'
        )
    if not s.last_reload_ok:
        detail = s.last_reload_error or "unknown error"
        html += (
            f'<div class="reload-error">Last reload failed (old config kept): {esc(detail)}</div>'
        )
    if s.ledger_error:
        html += (
            '<div class="ledger-error">Budget ledger unavailable: paid providers are paused '
            f"(free ones are still probed): {esc(s.ledger_error)}</div>"
        )
    return html


def _nav() -> str:
    links = ("/metrics", "/api/probes", "/api/status", "/healthz", "/readyz")
    anchors = " ".join(f'<a href="{p}">{p}</a>' for p in links)
    return f"<nav>{anchors}</nav>"


def _provider_row(p: ProviderRow) -> str:
    tags = '<span class="tag sim">simulated</span>' if p.simulated else ""
    return _row(
        _td_html(f"{esc(p.name)} {tags}".rstrip()),
        _td(p.hardware),
        _td(p.wire),
        _td(p.status, "wrap"),
        _td("yes" if p.probed else "no"),
    )


def _providers(s: StatusSnapshot) -> str:
    headers = ("Provider", "Hardware", "Wire", "Status", "Probed")
    rows = (_provider_row(p) for p in s.providers)
    return _section("providers", "Providers", _table(headers, rows, "no providers configured"))


def _tokens(r: Mapping[str, Any]) -> str:
    def count(key: str) -> str:
        v = _number(r.get(key))
        return DASH if v is None else str(int(v))

    text = f"{count('input_tokens')} / {count('output_tokens')}"
    return text + (" (est.)" if r.get("tokens_estimated") is True else "")


def _result_row(r: Mapping[str, Any], now: float) -> str:
    return _row(
        _td(r.get("provider", DASH)),
        _td(r.get("model", DASH)),
        _td(r.get("prompt", DASH)),
        _td_html(outcome_badge(r.get("outcome"))),
        _td(fmt_ms(r.get("time_to_first_token_seconds")), "num"),
        _td(fmt_ms(r.get("time_to_first_answer_token_seconds")), "num"),
        _td(fmt_float(r.get("output_tokens_per_second")), "num"),
        _td(fmt_float(r.get("request_duration_seconds"), 2), "num"),
        _td(_tokens(r), "num"),
        _td(fmt_dollars(r.get("cost_usd")), "num"),
        _td_html(fmt_when(r.get("finished_at"), now), "when"),
    )


def _last_results(s: StatusSnapshot) -> str:
    headers = (
        "Provider", "Model", "Prompt", "Outcome", "TTFT ms", "1st answer ms",
        "tok/s", "Duration s", "Tokens in / out", "Cost", "Finished",
    )  # fmt: skip
    rows = (_result_row(r, s.now) for r in s.last_results)
    return _section("last-results", "Last results", _table(headers, rows, "no probes yet"))


def _budget_bar(b: BudgetRow) -> str:
    if b.limit_dollars is None or b.limit_dollars <= 0:
        return DASH
    pct = 100 * b.spent_dollars / b.limit_dollars
    level = "bad" if pct >= 90 else "warn" if pct >= 75 else ""
    width = min(100.0, max(0.0, pct))
    return f'<span class="bar {level}"><i style="width:{width:.1f}%"></i></span>{pct:.1f}%'


def _budget_row(b: BudgetRow) -> str:
    limit = "no cap" if b.limit_dollars is None else fmt_dollars(b.limit_dollars)
    return _row(
        _td(b.scope),
        _td(b.period),
        _td(f"{fmt_dollars(b.spent_dollars)} / {limit}", "num"),
        _td_html(_budget_bar(b), "num"),
    )


def _budget(s: StatusSnapshot) -> str:
    headers = ("Scope", "Period", "Spent / limit", "Used")
    rows = (_budget_row(b) for b in s.budget)
    return _section("budget", "Budget", _table(headers, rows, "no budget caps configured"))


def _cooldown_row(c: CooldownRow, now: float) -> str:
    left = c.until - now
    return _row(
        _td(c.provider),
        _td(fmt_iso(c.until), "when"),
        _td(fmt_duration(left) if left > 0 else "expired", "num"),
        _td(c.reason, "wrap"),
    )


def _cooldowns(s: StatusSnapshot) -> str:
    headers = ("Provider", "Until", "Remaining", "Reason")
    rows = (_cooldown_row(c, s.now) for c in s.cooldowns)
    return _section("cooldowns", "Cooldowns", _table(headers, rows, "no provider is cooling down"))


def _recent_row(r: Mapping[str, Any], now: float) -> str:
    target = " / ".join(str(r.get(k, DASH)) for k in ("provider", "model", "prompt"))
    status = r.get("http_status")
    return _row(
        _td_html(fmt_when(r.get("finished_at"), now), "when"),
        _td_html(outcome_badge(r.get("outcome"))),
        _td(target),
        _td(DASH if status is None else status, "num"),
        _td(fmt_ms(r.get("time_to_first_token_seconds")), "num"),
        _td(fmt_float(r.get("output_tokens_per_second")), "num"),
        _td(r.get("error") or "", "err"),
    )


def _recent(s: StatusSnapshot) -> str:
    headers = ("Finished", "Outcome", "Provider / model / prompt", "HTTP", "TTFT ms", "tok/s",
               "Error")  # fmt: skip
    rows = (_recent_row(r, s.now) for r in s.recent_probes[:RECENT_LIMIT])
    title = f"Recent probes (last {RECENT_LIMIT}, newest first)"
    return _section("recent-probes", title, _table(headers, rows, "no probes yet"))


def render_page(s: StatusSnapshot) -> str:
    body = "".join((_providers(s), _last_results(s), _budget(s), _cooldowns(s), _recent(s)))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Speed Kings {esc(s.version)}</title><style>{_CSS}</style></head>"
        f"<body>{_header(s)}{_nav()}<main>{body}</main></body></html>\n"
    )
