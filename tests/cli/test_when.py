"""Times and dates typed on the command line: absolute, or relative to now, so a script never goes stale."""

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
import typer

from kaquan.cli.when import day, moment
from kaquan.kit import clock
from kaquan.kit.config import get_settings

# 2026-12-31 20:00 UTC is already 2027-01-01 04:00 in Shanghai.
NOW = datetime(2026, 12, 31, 20, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def new_years_eve(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("KAQUAN_TIMEZONE", raising=False)
    get_settings.cache_clear()
    clock.reset()
    clock.travel((NOW - clock.now()).total_seconds())
    yield
    clock.reset()
    get_settings.cache_clear()


def test_relative_times_count_from_now() -> None:
    assert abs(moment("now", "--at") - NOW) < timedelta(seconds=1)
    assert abs(moment("+2h", "--at") - (NOW + timedelta(hours=2))) < timedelta(seconds=1)
    assert abs(moment("-30m", "--at") - (NOW - timedelta(minutes=30))) < timedelta(seconds=1)
    assert abs(moment("+1w", "--at") - (NOW + timedelta(weeks=1))) < timedelta(seconds=1)
    assert moment("2026-12-12T20:00:00+08:00", "--at") == datetime(2026, 12, 12, 12, 0, tzinfo=UTC)


def test_relative_dates_count_from_today_in_the_merchants_zone() -> None:
    assert day("today", "--on") == date(2027, 1, 1)  # Shanghai's date, not UTC's
    assert day("+30d", "--on") == date(2027, 1, 31)
    assert day("-1d", "--on") == date(2026, 12, 31)
    assert day("+2w", "--on") == date(2027, 1, 15)
    assert day("+1y", "--on") == date(2028, 1, 1)
    assert day("2027-12-31", "--on") == date(2027, 12, 31)


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("2026-12-12T20:00:00", "needs a time zone"),
        ("tomorrow", "is not a time like"),
        ("+2y", "the unit is one of s, m, h, d, w"),
    ],
)
def test_a_time_that_cannot_be_read_names_the_option(value: str, said: str) -> None:
    with pytest.raises(typer.BadParameter) as refused:
        moment(value, "--starts-at")
    assert said in str(refused.value) and refused.value.param_hint == "--starts-at"


@pytest.mark.parametrize(("value", "said"), [("31/12/2027", "is not a date like"), ("+3h", "one of d, w, y")])
def test_a_date_that_cannot_be_read_names_the_option(value: str, said: str) -> None:
    with pytest.raises(typer.BadParameter) as refused:
        day(value, "--expires")
    assert said in str(refused.value) and refused.value.param_hint == "--expires"
