"""A download's filename survives Chinese characters and cannot break out of its header."""

from kaquan.kit.tables import Table
from kaquan.web.downloads import attachment, table_download


def test_a_chinese_filename_has_an_ascii_fallback_and_its_utf8_form() -> None:
    header = attachment("订单-2026.csv")
    assert header.startswith('attachment; filename="__-2026.csv"')
    assert "filename*=UTF-8''%E8%AE%A2%E5%8D%95-2026.csv" in header


def test_quotes_and_backslashes_cannot_end_the_header_value_early() -> None:
    assert attachment('a"b\\c.csv').startswith('attachment; filename="a_b_c.csv"')


def test_a_table_download_names_its_format_and_is_never_cached() -> None:
    response = table_download(Table("t", ["h"], [["v"]]), "xlsx", "orders")
    assert response.media_type is not None
    assert response.media_type.startswith("application/vnd.openxmlformats")
    assert response.headers["cache-control"] == "no-store"
    assert 'filename="orders.xlsx"' in response.headers["content-disposition"]
