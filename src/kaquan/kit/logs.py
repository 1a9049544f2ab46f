"""One log format for every process: JSON lines for machines, a readable line in a terminal.

Every record carries the id of the HTTP request it belongs to (`request_id`, "-" outside a
request), the same id the response's `X-Request-ID` header and JSON error body show, so an
operator goes from a buyer's error to every line the request wrote. KAQUAN_LOG_FORMAT picks
`json` or `text`; by default a terminal gets text and anything else (a file, journald, a
collector) gets JSON.

Lines are written in batches (`BatchingStreamHandler`): a flash sale's storm logs thousands of requests a
second, and a system call per line was a tenth of the server loop's time (py-spy, 2026-12-07).
"""

import json
import logging
import os
import sys
import threading
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Final, TextIO

import orjson

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
        try:
            return orjson.dumps(entry, default=str).decode()
        except orjson.JSONEncodeError:  # what orjson refuses (an integer past 64 bits): the standard library's way
            return json.dumps(entry, ensure_ascii=False, default=str)


class BatchingStreamHandler(logging.StreamHandler[TextIO]):
    """Lines written together, at most `interval_s` after the first of them, or at once from WARNING up.

    A warning or an error is written at once with every line held before it, so nothing is out of order
    and a failure is never waiting in memory; only INFO and DEBUG lines wait, and a process killed outright
    loses at most `interval_s` of them (a stopped process writes them: `logging.shutdown` flushes).
    """

    def __init__(self, stream: TextIO, *, interval_s: float = 0.1, max_lines: int = 512) -> None:
        super().__init__(stream)
        self._interval_s = interval_s
        self._max_lines = max_lines
        self._held: list[str] = []
        self._timer: threading.Timer | None = None

    def emit(self, record: logging.LogRecord) -> None:
        """Called with the handler's lock held (`Handler.handle`)."""
        try:
            self._held.append(self.format(record) + self.terminator)
        except Exception:
            self.handleError(record)
            return
        if record.levelno >= logging.WARNING or len(self._held) >= self._max_lines:
            self._write()
        elif self._timer is None:
            self._timer = threading.Timer(self._interval_s, self.flush)
            self._timer.daemon = True
            self._timer.start()

    def flush(self) -> None:
        self.acquire()
        try:
            self._write()
        finally:
            self.release()

    def _write(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._held:
            text, self._held = "".join(self._held), []
            try:
                self.stream.write(text)
            except Exception:  # a closed or broken stream: as `StreamHandler` does, never raise into the caller
                return
        if self.stream and hasattr(self.stream, "flush"):
            self.stream.flush()


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
    handler = BatchingStreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if (fmt or chosen_format()) == "json" else logging.Formatter(TEXT_FORMAT))
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
