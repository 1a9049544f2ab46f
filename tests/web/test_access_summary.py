"""The summary line of a sold-out flash sale's answers: one per path answered, with its count and addresses."""

import asyncio
import logging

import pytest

from kaquan.web.access_summary import SoldOutSummary


async def test_one_line_per_path_counts_its_answers_and_distinct_addresses(caplog: pytest.LogCaptureFixture) -> None:
    summary = SoldOutSummary(every_s=3600)
    with caplog.at_level(logging.INFO, logger="kaquan.access"):
        for address in ("10.0.0.1", "10.0.0.2", "10.0.0.1"):
            summary.add("/api/flash/7/purchase", address)
        summary.add("/api/flash/8/purchase", "10.0.0.3")
        assert caplog.records == []  # nothing until the summary is due
        summary.flush()
        summary.flush()  # nothing counted since: no line

    lines = {record.getMessage().split(" 200 ")[0]: record for record in caplog.records}
    assert set(lines) == {'2 addresses "POST /api/flash/7/purchase"', '10.0.0.3 "POST /api/flash/8/purchase"'}
    seven = lines['2 addresses "POST /api/flash/7/purchase"']
    assert " sold_out x3 in " in seven.getMessage()
    assert (seven.__dict__["answers"], seven.__dict__["addresses"]) == (3, 2)


async def test_the_line_is_written_when_due_without_being_asked(caplog: pytest.LogCaptureFixture) -> None:
    summary = SoldOutSummary(every_s=0)
    with caplog.at_level(logging.INFO, logger="kaquan.access"):
        summary.add("/api/flash/7/purchase", "10.0.0.1")
        for _ in range(100):
            if caplog.records:
                break
            await asyncio.sleep(0.01)

    assert [record.__dict__["answers"] for record in caplog.records] == [1]
