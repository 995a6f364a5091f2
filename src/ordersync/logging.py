"""structlog set-up: readable lines for people, JSON lines for machines, secrets never written.

httpx logs every request URL at INFO; those URLs can carry WooCommerce keys in the query string, so
its logger is held at WARNING and every event passes through a redaction step. The standard library's
loggers (APScheduler, uvicorn, Alembic) go through the same renderer, so a JSON log is JSON
throughout.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

_SECRET_KEYS = ("secret", "token", "password", "authorization", "consumer_key", "uuid", "accesstoken")

_defaults: dict[str, Any] = {"json": False, "level": "INFO"}
"""What ``ordersync --log-json --log-level X`` chose for every command of this process."""


def set_defaults(*, json: bool, level: str) -> None:
    if logging.getLevelName(level.upper()) not in (10, 20, 30, 40, 50):
        raise ValueError(f"log level {level!r}: use DEBUG, INFO, WARNING or ERROR")
    _defaults.update(json=json, level=level.upper())


def json_logs() -> bool:
    return bool(_defaults["json"])


def _redact(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    for key in list(event):
        if any(s in key.lower() for s in _SECRET_KEYS):
            event[key] = "REDACTED"
    return event


def configure_logging(*, json: bool | None = None, level: str | None = None, stream: Any = None) -> None:
    """``json``/``level`` default to the process's choice (``set_defaults``); a command's own
    ``--log-json`` turns JSON on too."""
    json = bool(json) or json_logs()
    level = (level or _defaults["level"]).upper()
    _defaults["json"] = json
    explicit = stream is not None
    stream = stream or sys.stderr
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=stream.isatty() if hasattr(stream, "isatty") else False)
    )
    shared: list[Any] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact,
    ]
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            *shared,
            structlog.processors.format_exc_info if json else structlog.processors.StackInfoRenderer(),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        # Look the stream up at each call: a captured or replaced stderr (tests, embedding) may close.
        logger_factory=lambda *_: structlog.PrintLogger(file=stream if explicit else sys.stderr),
        cache_logger_on_first_use=False,
    )
    # The standard library's loggers, rendered the same way (one handler on the root logger).
    handler = _StderrHandler(stream if explicit else None)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info if json else structlog.processors.StackInfoRenderer(),
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if not isinstance(h, _StderrHandler)] + [handler]
    root.setLevel(logging.getLevelName(level))
    for noisy in ("httpx", "httpcore", "uvicorn", "uvicorn.access", "uvicorn.error"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    for chatty in ("apscheduler", "alembic"):
        # Both say at INFO what ordersync says itself ("Running upgrade", "Added job"): their warnings
        # and errors come through, their INFO lines only at --log-level DEBUG.
        logging.getLogger(chatty).setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to the stream given, or to whatever ``sys.stderr`` is at the time (tests swap it)."""

    def __init__(self, stream: Any = None):
        super().__init__(stream)
        self._fixed = stream is not None

    def emit(self, record: logging.LogRecord) -> None:
        if not self._fixed:
            self.stream = sys.stderr
        super().emit(record)
