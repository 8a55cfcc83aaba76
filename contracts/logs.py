"""Logging the same way from every process: plain lines, or JSON (`LOG_FORMAT=json`).

What a line is about (the command id, its correlation id, the trace id, the request id)
is bound once for a piece of work (`bound(command_id=...)`, kept in a context variable,
so each asyncio task has its own) and added to every line logged meanwhile: in plain
lines as `[command_id=... trace_id=...]`, in JSON as fields of the object.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Final

_CONTEXT: ContextVar[Mapping[str, str] | None] = ContextVar("log_context", default=None)
PLAIN: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s%(context)s"


@contextlib.contextmanager
def bound(**fields: str | None) -> Iterator[None]:
    """Add these fields to every line logged inside the block (in this task)."""
    token = _CONTEXT.set({**(_CONTEXT.get() or {}), **{k: v for k, v in fields.items() if v}})
    try:
        yield
    finally:
        _CONTEXT.reset(token)


class ContextFilter(logging.Filter):
    """Puts the bound fields on each record: `record.context` (plain) and `record.fields`."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = dict(_CONTEXT.get() or {})
        record.fields = fields
        record.context = (
            " [" + " ".join(f"{k}={v}" for k, v in fields.items()) + "]" if fields else ""
        )
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, the bound fields, the error."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **getattr(record, "fields", {}),
        }
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def configure(level: str | None = None, fmt: str | None = None) -> None:
    """Root logging for a process: LOG_LEVEL (info) and LOG_FORMAT (plain or json)."""
    handler = logging.StreamHandler()
    handler.addFilter(ContextFilter())
    if (fmt or os.environ.get("LOG_FORMAT", "plain")).lower() == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(PLAIN))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel((level or os.environ.get("LOG_LEVEL", "INFO")).upper())
