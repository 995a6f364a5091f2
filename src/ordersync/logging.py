"""structlog set-up: readable lines for people, JSON lines for machines, secrets never written.

httpx logs every request URL at INFO; those URLs can carry WooCommerce keys in the query string, so
its logger is held at WARNING and every event passes through a redaction step.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

_SECRET_KEYS = ("secret", "token", "password", "authorization", "consumer_key", "uuid", "accesstoken")


def _redact(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    for key in list(event):
        if any(s in key.lower() for s in _SECRET_KEYS):
            event[key] = "REDACTED"
    return event


def configure_logging(*, json: bool = False, level: str = "INFO", stream: Any = None) -> None:
    explicit = stream is not None
    stream = stream or sys.stderr
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=stream.isatty() if hasattr(stream, "isatty") else False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact,
            structlog.processors.format_exc_info if json else structlog.processors.StackInfoRenderer(),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        # Look the stream up at each call: a captured or replaced stderr (tests, embedding) may close.
        logger_factory=lambda *_: structlog.PrintLogger(file=stream if explicit else sys.stderr),
        cache_logger_on_first_use=False,
    )
    for noisy in ("httpx", "httpcore", "uvicorn", "uvicorn.access", "uvicorn.error"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
