"""Structured logs: one JSON object per line by default, readable on a terminal.

The logger is built here and passed in (structlog's global configuration is left alone);
every string in every event goes through the redactor, so an API key that reaches a log
call by accident still never reaches the output.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, FilteringBoundLogger, WrappedLogger

from speed_kings.redact import Redactor

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}


def _redacting(
    redact: Callable[[str], str],
) -> Callable[[WrappedLogger, str, EventDict], EventDict]:
    def scrub(value: Any) -> Any:
        if isinstance(value, str):
            return redact(value)
        if isinstance(value, dict):
            return {k: scrub(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [scrub(v) for v in value]
        return value

    def processor(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
        return {k: scrub(v) for k, v in event.items()}

    return processor


def make_logger(
    *,
    fmt: str = "auto",
    level: str = "info",
    stream: TextIO | None = None,
    redactor: Redactor | None = None,
) -> FilteringBoundLogger:
    """`fmt`: json, console, or auto (console on a terminal, else JSON)."""
    out = stream or sys.stderr
    console = fmt == "console" or (fmt == "auto" and out.isatty())
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=out.isatty())
        if console
        else structlog.processors.JSONRenderer(sort_keys=False)
    )
    processors: list[Any] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        _redacting(redactor or Redactor()),
        renderer,
    ]
    logger: FilteringBoundLogger = structlog.wrap_logger(
        structlog.PrintLogger(out),
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[level]),
        cache_logger_on_first_use=False,
    )
    return logger
