from __future__ import annotations

import io
import json

from speed_kings.logs import make_logger
from speed_kings.redact import Redactor

SECRET = "gsk_abcdefgh_ijklmnop_qrstuvwxyz_0123"


def test_json_one_event_per_line_with_secrets_redacted_everywhere() -> None:
    out = io.StringIO()
    log = make_logger(fmt="json", stream=out, redactor=Redactor([SECRET]))
    log.info(
        "probe",
        provider="groq",
        error=f"bad key {SECRET}",
        nested={"headers": [f"Bearer {SECRET}"]},
    )
    log.debug("hidden")  # below the default level
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    event = json.loads(lines[0])
    assert event["event"] == "probe" and event["level"] == "info" and "timestamp" in event
    assert SECRET not in lines[0]
    assert event["error"] == "bad key [REDACTED]"
    assert event["nested"] == {"headers": ["Bearer [REDACTED]"]}


def test_console_format_and_level() -> None:
    out = io.StringIO()
    log = make_logger(fmt="console", level="debug", stream=out)
    log.debug("starting", port=9464)
    text = out.getvalue()
    assert "starting" in text and "port=9464" in text and not text.startswith("{")
