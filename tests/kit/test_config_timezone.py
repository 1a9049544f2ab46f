"""The merchant's time zone: Asia/Shanghai unless set, and a name that is not a zone stops the server at start."""

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from kaquan.kit.config import Settings


def test_the_default_zone_is_shanghai() -> None:
    moment = datetime(2026, 12, 5, 16, 30, tzinfo=UTC)

    assert Settings().timezone == "Asia/Shanghai"
    assert moment.astimezone(Settings().zone()).hour == 0


def test_another_zone_can_be_set() -> None:
    assert Settings(timezone="Europe/Berlin").zone().key == "Europe/Berlin"


@pytest.mark.parametrize("name", ["Mars/Olympus", "", "../../etc/passwd", "UTC+8"])
def test_an_unknown_zone_is_refused(name: str) -> None:
    with pytest.raises(ValidationError, match="time zone"):
        Settings(timezone=name)
