"""Structured JSON logs with request ids. Prompts and completions appear only where enabled per key."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

from modelbus.http import dumps_json
from modelbus.redaction import redact

ACCESS = logging.getLogger("modelbus.gateway.access")


class JSONFormatter(logging.Formatter):
    """One JSON object per line; ``extra={"fields": {...}}`` adds fields; secrets are masked."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return dumps_json(entry, default=str).decode()


def configure(level: int = logging.INFO) -> None:
    """Send modelbus logs to stderr as JSON lines (done by `modelbus serve`).

    The JSON lines carry no thread, process or source location, so log records stop collecting them:
    the flags the logging HOWTO's "Optimization" section names, which save a stack walk per record."""
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging._srcfile = None  # type: ignore[attr-defined]  # no sys._getframe() walk per record
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter())
    for name in ("modelbus", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False
