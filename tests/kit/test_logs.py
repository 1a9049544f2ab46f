"""One log format: a JSON object per line carrying the request id, or a readable line in a terminal."""

import io
import json
import logging
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest

from kaquan.kit import logs


@pytest.fixture
def captured(capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[[], list[str]]]:
    """The lines written to stderr by the handler a test configures; the logging setup is put back after.

    uvicorn's loggers start at no level of their own, as in a fresh process (a test that ran a server
    in this one left `uvicorn.error` at WARNING)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    uvicorns = [logging.getLogger(name) for name in ("uvicorn", "uvicorn.error", "uvicorn.access")]
    levels = [logger.level for logger in uvicorns]
    for logger in uvicorns:
        logger.setLevel(logging.NOTSET)

    def lines() -> list[str]:
        for handler in root.handlers:
            handler.flush()
        return capsys.readouterr().err.splitlines()

    yield lines
    root.handlers[:] = handlers
    root.setLevel(level)
    for logger, was in zip(uvicorns, levels, strict=True):
        logger.setLevel(was)


def test_a_json_line_has_time_level_logger_message_request_id_and_extras(captured: Callable[[], list[str]]) -> None:
    logs.configure(fmt="json", force=True)
    token = logs.REQUEST_ID.set("req-12345678")
    try:
        logging.getLogger("kaquan.test").warning("stock low on %s", "VIDEO-1M", extra={"sku": "VIDEO-1M"})
    finally:
        logs.REQUEST_ID.reset(token)

    entry = json.loads(captured()[-1])
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "kaquan.test"
    assert entry["message"] == "stock low on VIDEO-1M"
    assert entry["request_id"] == "req-12345678"
    assert entry["sku"] == "VIDEO-1M"
    assert entry["time"].endswith("+00:00")


def test_a_line_outside_any_request_says_so_and_an_exception_stays_one_line(captured: Callable[[], list[str]]) -> None:
    logs.configure(fmt="json", force=True)
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("kaquan.test").exception("failed")

    lines = captured()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["request_id"] == "-"
    assert "ValueError: boom" in entry["exception"]


def test_uvicorns_loggers_share_the_one_handler(captured: Callable[[], list[str]]) -> None:
    logs.configure(fmt="json", force=True)
    logging.getLogger("uvicorn.error").info("Started server process")

    assert json.loads(captured()[-1])["logger"] == "uvicorn.error"


def test_text_is_chosen_for_a_terminal_and_json_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAQUAN_LOG_FORMAT", raising=False)
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    assert logs.chosen_format() == "text"
    monkeypatch.setattr("sys.stderr.isatty", lambda: False)
    assert logs.chosen_format() == "json"
    monkeypatch.setenv("KAQUAN_LOG_FORMAT", "text")
    assert logs.chosen_format() == "text"
    monkeypatch.setenv("KAQUAN_LOG_FORMAT", "yaml")  # not a format: the default rule
    assert logs.chosen_format() == "json"


def test_logging_that_is_already_set_up_is_left_alone_unless_forced(captured: Callable[[], list[str]]) -> None:
    logs.configure(fmt="json", force=True)
    ours = logging.getLogger().handlers[:]

    logs.configure(fmt="text")

    assert logging.getLogger().handlers == ours


def _handler(stream: io.StringIO, **kwargs: Any) -> logging.Logger:
    handler = logs.BatchingStreamHandler(stream, **kwargs)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger(f"kaquan.test.batching.{id(stream)}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger


def test_info_lines_are_written_together_shortly_after_the_first() -> None:
    stream = io.StringIO()
    logger = _handler(stream, interval_s=0.5)  # long enough that no busy machine writes before the first look

    for number in range(3):
        logger.info("request %d", number)
    held = stream.getvalue()
    deadline = time.monotonic() + 5
    while not stream.getvalue() and time.monotonic() < deadline:
        time.sleep(0.01)

    assert held == ""
    assert stream.getvalue() == "INFO request 0\nINFO request 1\nINFO request 2\n"


def test_a_warning_is_written_at_once_after_the_lines_held_before_it() -> None:
    stream = io.StringIO()
    logger = _handler(stream, interval_s=60)

    logger.info("first")
    logger.error("the database is away")

    assert stream.getvalue() == "INFO first\nERROR the database is away\n"


def test_a_full_batch_is_written_without_waiting() -> None:
    stream = io.StringIO()
    logger = _handler(stream, interval_s=60, max_lines=4)

    for number in range(5):
        logger.info("line %d", number)

    assert stream.getvalue().splitlines() == [f"INFO line {number}" for number in range(4)]


def test_a_process_that_stops_writes_the_lines_it_held() -> None:
    program = (
        "import logging; from kaquan.kit import logs; logs.configure(fmt='json');"
        " logging.getLogger('kaquan.test').info('held until the end')"
    )

    finished = subprocess.run(  # noqa: S603 - this interpreter, a fixed program
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=True
    )

    assert json.loads(finished.stderr.splitlines()[-1])["message"] == "held until the end"


def test_a_value_json_cannot_hold_natively_is_written_as_text(captured: Callable[[], list[str]]) -> None:
    logs.configure(fmt="json", force=True)
    logging.getLogger("kaquan.test").warning("odd extras", extra={"big": 2**70, "at": Decimal("1.5"), "名": "卡券"})

    entry = json.loads(captured()[-1])
    assert entry["big"] == 2**70 and entry["at"] == "1.5" and entry["名"] == "卡券"
