"""One log format for every process: JSON lines for machines, a readable line in a terminal.

Every record carries the id of the HTTP request it belongs to (`request_id`, "-" outside a
request), the same id the response's `X-Request-ID` header and JSON error body show, so an
operator goes from a buyer's error to every line the request wrote. KAQUAN_LOG_FORMAT picks
`json` or `text`; by default a terminal gets text and anything else (a file, journald, a
collector) gets JSON.
"""

import json
import logging
import os
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Final

REQUEST_ID: ContextVar[str] = ContextVar("request_id", default="-")
FORMATS: Final = ("json", "text")
TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "request_id"}


class RequestIdFilter(logging.Filter):
    """Stamps each record with the request it was written in."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, request id, extras, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", REQUEST_ID.get()),
        }
        entry.update({key: value for key, value in record.__dict__.items() if key not in _STANDARD})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def chosen_format() -> str:
    asked = os.environ.get("KAQUAN_LOG_FORMAT", "").strip().lower()
    if asked in FORMATS:
        return asked
    return "text" if sys.stderr.isatty() else "json"


def configure(level: int = logging.INFO, fmt: str | None = None, *, force: bool = False) -> None:
    """Route every logger (uvicorn's included) through one stderr handler in the chosen format.

    Like `logging.basicConfig`, a process whose logging is already set up (a test runner, an embedding
    application) is left as it is unless `force`.
    """
    root = logging.getLogger()
    if root.handlers and not force:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if (fmt or chosen_format()) == "json" else logging.Formatter(TEXT_FORMAT))
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
