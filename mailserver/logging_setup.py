"""Structured logs: one event per line, key=value text or JSON, never passwords or bodies.

Records are handed to a queue and written by a listener thread: a slow stderr (a full pipe, a
busy journald) never stalls the event loop, and the loop does not pay for the write itself.
"""

from __future__ import annotations

import atexit
import json
import logging
import logging.handlers
import os
import queue
import sys
from datetime import UTC, datetime


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class _InProcessQueueHandler(logging.handlers.QueueHandler):
    """Hands the record over as it is: the listener thread formats it, not the caller.

    (The stock ``prepare`` formats and copies every record in the logging thread, so that it
    could cross a process boundary; this queue never leaves the process.)
    """

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record


_listener: logging.handlers.QueueListener | None = None


def _stop_listener() -> None:
    """Write out what is still queued (at exit, or before a reconfiguration)."""
    global _listener
    if _listener is not None:
        _listener.stop()
        _listener = None


atexit.register(_stop_listener)


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Configure the root logger once; GOVMAIL_LOG_LEVEL overrides ``level``."""
    global _listener
    level = os.environ.get("GOVMAIL_LOG_LEVEL", level).upper()
    output = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        output.setFormatter(JSONFormatter())
    else:
        output.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s", "%Y-%m-%dT%H:%M:%S")
        )
    _stop_listener()
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    _listener = logging.handlers.QueueListener(records, output, respect_handler_level=False)
    _listener.start()
    root = logging.getLogger()
    root.handlers[:] = [_InProcessQueueHandler(records)]
    # What the formats never show is not collected (the logging HOWTO's "Optimization"):
    # no caller frame walk, thread or process names per record.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    root.setLevel(level)
    for noisy in ("mail.log", "uvicorn.error", "alembic.runtime.migration"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
