"""How an operator's code file is read: encodings, layouts, line numbers, problems."""

import datetime
import gc
from collections.abc import Iterator
from itertools import pairwise

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from kaquan.inventory.intake import parsing
from kaquan.inventory.intake.parsing import (
    CARD_COLUMNS,
    EXPIRY_COLUMNS,
    SECRET_COLUMNS,
    SUPPORTED_ENCODINGS,
    CodeLine,
    CodeSource,
    ImportFileError,
    LineProblem,
    ParsedFile,
    ProblemLog,
    parse_code_file,
    read_code_file,
)
from kaquan.kit.errors import BadInput


def parse(text: str, **options: str) -> ParsedFile:
    return parse_code_file(text.encode(), **options)


def codes(parsed: ParsedFile) -> list[tuple[int, str | None, str]]:
    return [(line.line_no, line.card_no, line.secret) for line in parsed.lines]


def problems(parsed: ParsedFile) -> list[tuple[int, str]]:
    return [(problem.line_no, problem.code) for problem in parsed.problems]


def only_problem(parsed: ParsedFile) -> LineProblem:
    assert len(parsed.problems) == 1, parsed.problems
    return parsed.problems[0]


# --- encodings ----------------------------------------------------------------------------------


def test_plain_utf8_is_read_as_utf8() -> None:
    parsed = parse_code_file("1001,卡密甲\n".encode())
    assert parsed.encoding == "utf-8"
    assert codes(parsed) == [(1, "1001", "卡密甲")]


def test_utf8_with_bom_is_read_and_the_bom_is_not_part_of_the_first_code() -> None:
    parsed = parse_code_file(b"\xef\xbb\xbfAAAA-1111\nBBBB-2222\n")
    assert parsed.encoding == "utf-8-sig"
    assert codes(parsed) == [(1, None, "AAAA-1111"), (2, None, "BBBB-2222")]


def test_gbk_bytes_with_a_chinese_header_are_read_as_gb18030() -> None:
    data = "卡号,卡密\n1001,甲乙丙丁\n1002,戊己庚辛\n".encode("gbk")
    parsed = parse_code_file(data)
    assert parsed.encoding == "gb18030"
    assert parsed.layout == "csv"
    assert codes(parsed) == [(2, "1001", "甲乙丙丁"), (3, "1002", "戊己庚辛")]


def test_a_named_encoding_is_used_as_given() -> None:
    parsed = parse_code_file("卡号,卡密\n1001,甲乙\n".encode("gbk"), encoding="GBK")
    assert parsed.encoding == "gbk"
    assert codes(parsed) == [(2, "1001", "甲乙")]


def test_a_named_encoding_is_strict_even_when_another_would_work() -> None:
    with pytest.raises(ImportFileError, match="not valid utf-8"):
        parse_code_file("1001,甲乙\n".encode("gbk"), encoding="utf-8")


def test_a_bom_never_becomes_part_of_a_code_even_under_plain_utf8() -> None:
    parsed = parse_code_file(b"\xef\xbb\xbfAAAA\n", encoding="utf-8")
    assert codes(parsed) == [(1, None, "AAAA")]


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_a_utf16_or_utf32_file_is_rejected_naming_the_supported_encodings(encoding: str) -> None:
    with pytest.raises(ImportFileError) as caught:
        parse_code_file("卡号,卡密\n1001,ABCD\n".encode(encoding))
    assert "not readable" in caught.value.message
    assert caught.value.details["supported"] == list(SUPPORTED_ENCODINGS)


@pytest.mark.parametrize(
    ("data", "line_no"),
    [(b"ABCD\n\xff\n", 2), (b"\x80\x80\x80", 1), (b"ABCD\x00EFGH\n", 1), (b"A\nB\nC\xff\xfeD\n", 3)],
)
def test_bytes_that_no_supported_encoding_reads_are_rejected_naming_their_line(data: bytes, line_no: int) -> None:
    with pytest.raises(ImportFileError, match=rf"not readable \(line {line_no}\)") as caught:
        parse_code_file(data)
    assert caught.value.details["line_no"] == line_no


def test_a_nul_character_is_rejected_even_under_a_named_encoding() -> None:
    with pytest.raises(ImportFileError, match="not readable"):
        parse_code_file("ABCD\n".encode("utf-16-le"), encoding="utf-8")


@pytest.mark.parametrize("name", ["klingon", "hex", "rot13"])
def test_an_unknown_encoding_name_is_rejected(name: str) -> None:
    with pytest.raises(ImportFileError, match="unknown encoding") as caught:
        parse_code_file(b"ABCD\n", encoding=name)
    assert caught.value.details["encoding"] == name


def test_file_errors_are_bad_input_with_their_own_code() -> None:
    with pytest.raises(BadInput) as caught:
        parse_code_file(b"")
    assert caught.value.status == 400
    assert caught.value.code == "import_file_invalid"
    assert caught.value.to_dict()["error"]["message"] == "the file holds no codes"


# --- files without codes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "layout"),
    [
        (b"", "auto"),
        (b"\xef\xbb\xbf", "auto"),
        (b"\n\r\n  \n\t\r", "auto"),
        (b"card_no,secret\n", "auto"),
        (b"card_no,secret\n\n,\n", "csv"),
        ("卡号,卡密\r\n".encode("gbk"), "auto"),
        ("卡号,卡密\n".encode(), "pair"),
        ("卡密\n\n".encode(), "auto"),
        (b" Secret \n", "single"),
    ],
)
def test_an_empty_blank_or_header_only_file_holds_no_codes(data: bytes, layout: str) -> None:
    with pytest.raises(ImportFileError, match="holds no codes"):
        parse_code_file(data, layout=layout)


def test_an_unknown_layout_is_rejected() -> None:
    with pytest.raises(ImportFileError, match="unknown layout"):
        parse("ABCD\n", layout="xml")


# --- lines --------------------------------------------------------------------------------------


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_every_line_ending_counts_one_line(newline: str) -> None:
    parsed = parse(newline.join(["AAAA", "", "BBBB", "CCCC", ""]))
    assert codes(parsed) == [(1, None, "AAAA"), (3, None, "BBBB"), (4, None, "CCCC")]


def test_mixed_line_endings_count_as_an_editor_shows_them() -> None:
    parsed = parse("AAAA\r\nBBBB\rCCCC\nDDDD")
    assert [line.line_no for line in parsed.lines] == [1, 2, 3, 4]


def test_only_newlines_end_lines_not_other_unicode_breaks() -> None:
    parsed = parse("AA\x0cAA\nBB\u2028BB\nCCCC\n")
    assert [line.line_no for line in parsed.lines] == [1, 2, 3]


def test_blank_lines_are_skipped_but_keep_later_line_numbers_right() -> None:
    parsed = parse("\n\nAAAA\n   \n\t\nBBBB\n\n")
    assert codes(parsed) == [(3, None, "AAAA"), (6, None, "BBBB")]
    assert parsed.problems == []


def test_fields_lose_their_surrounding_whitespace() -> None:
    assert codes(parse("  AAAA \t\n\u3000BBBB\u3000\n")) == [(1, None, "AAAA"), (2, None, "BBBB")]
    assert codes(parse(" 1001 ,  S-1 \n1002\t S-2\t\n")) == [(1, "1001", "S-1"), (2, "1002", "S-2")]


# --- layouts ------------------------------------------------------------------------------------


def test_single_layout_takes_the_whole_line_as_the_secret() -> None:
    parsed = parse("AAAA-1111\nBBBB 2222\n", layout="single")
    assert parsed.layout == "single"
    assert parsed.lines == [
        CodeLine(1, None, "AAAA-1111", None),
        CodeLine(2, None, "BBBB 2222", None),
    ]


def test_a_chosen_single_layout_keeps_separators_inside_the_secret() -> None:
    assert codes(parse("AB,CD\nEF\tGH\n", layout="single")) == [(1, None, "AB,CD"), (2, None, "EF\tGH")]


@pytest.mark.parametrize("separator", [",", "\t", "，"])
def test_pair_layout_accepts_comma_tab_and_full_width_comma(separator: str) -> None:
    parsed = parse(f"1001{separator}S-1\n1002{separator}S-2\n")
    assert parsed.layout == "pair"
    assert codes(parsed) == [(1, "1001", "S-1"), (2, "1002", "S-2")]


def test_pair_layout_accepts_mixed_separators_line_by_line() -> None:
    assert codes(parse("1001,S-1\n1002\tS-2\n1003，S-3\n")) == [
        (1, "1001", "S-1"),
        (2, "1002", "S-2"),
        (3, "1003", "S-3"),
    ]


def test_an_empty_card_number_is_none() -> None:
    assert codes(parse("1001,S-1\n,S-2\n")) == [(1, "1001", "S-1"), (2, None, "S-2")]


def test_trailing_empty_fields_from_spreadsheets_are_ignored() -> None:
    parsed = parse("1001,S-1,\n1002,S-2,,\t\n")
    assert codes(parsed) == [(1, "1001", "S-1"), (2, "1002", "S-2")]
    assert parsed.problems == []


def test_a_line_of_separators_only_counts_as_blank() -> None:
    parsed = parse("1001,S-1\n,\n , ,\n1002,S-2\n")
    assert codes(parsed) == [(1, "1001", "S-1"), (4, "1002", "S-2")]
    assert parsed.problems == []


def test_a_header_line_is_skipped_in_a_chosen_pair_layout() -> None:
    assert codes(parse("卡号,卡密\n1001,S-1\n", layout="pair")) == [(2, "1001", "S-1")]


def test_a_header_line_is_skipped_in_single_layout() -> None:
    assert codes(parse("卡密\nAAAA\n")) == [(2, None, "AAAA")]


def test_csv_layout_reads_columns_by_name_in_any_order_ignoring_unknown_ones() -> None:
    parsed = parse("note,Secret,Expires_On,CARD_NO\nx,S-1,2030-01-31,1001\ny,S-2,,1002\n")
    assert parsed.layout == "csv"
    assert parsed.lines == [
        CodeLine(2, "1001", "S-1", datetime.date(2030, 1, 31)),
        CodeLine(3, "1002", "S-2", None),
    ]


@pytest.mark.parametrize(
    ("card", "secret", "expiry"),
    [
        ("card_no", "secret", "expires_on"),
        ("card", "password", "expiry"),
        ("card_number", "code", "expire"),
        ("Card Number", "PIN", "Expires-On"),
        ("卡号", "卡密", "有效期"),
        ("卡号", "密码", "过期时间"),
    ],
)
def test_csv_column_names_and_their_aliases_are_recognised(card: str, secret: str, expiry: str) -> None:
    parsed = parse(f"{card},{secret},{expiry}\n1001,S-1,2030/1/5\n")
    assert parsed.lines == [CodeLine(2, "1001", "S-1", datetime.date(2030, 1, 5))]


def test_csv_without_a_card_column_gives_codes_without_card_numbers() -> None:
    assert codes(parse("secret,expiry\nS-1,2030-01-01\n")) == [(2, None, "S-1")]


def test_csv_reads_quoted_fields_and_a_full_width_comma_delimiter() -> None:
    assert codes(parse('card_no,secret\n1001,"S,1"\n"1002", "S 2"\n')) == [
        (2, "1001", "S,1"),
        (3, "1002", "S 2"),
    ]
    assert codes(parse("卡号，卡密\n1001，S-1\n")) == [(2, "1001", "S-1")]


def test_csv_reads_a_tab_separated_file() -> None:
    assert codes(parse("card_no\tsecret\n1001\tS-1\n")) == [(2, "1001", "S-1")]


def test_a_csv_header_without_a_secret_column_is_rejected_naming_it() -> None:
    with pytest.raises(ImportFileError, match="no secret column") as caught:
        parse("card_no,serial\n1001,S-1\n", layout="csv")
    assert "card_no, serial" in caught.value.message
    assert caught.value.details["header"] == ["card_no", "serial"]


def test_a_csv_header_naming_two_secret_columns_is_rejected() -> None:
    with pytest.raises(ImportFileError, match="more than one secret column: code, pin"):
        parse("card_no,code,pin\n1001,S-1,1234\n")


def test_a_headerless_file_read_as_csv_is_rejected_without_echoing_its_first_code() -> None:
    with pytest.raises(ImportFileError, match="should be a header") as caught:
        parse("1001,SECRET-XYZZY\n1002,SECRET-PLUGH\n", layout="csv")
    assert "XYZZY" not in str(caught.value.to_dict())


# --- auto-detection -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "layout"),
    [
        ("card_no,secret\n1001,S-1\n", "csv"),
        ("Card No\tPassword\n1001\tS-1\n", "csv"),
        ("卡号,卡密\n1001,S-1\n", "csv"),
        ("1001,S-1\n", "pair"),
        ("1001,ABCODE99\n", "pair"),
        ("1001\tS-1\n", "pair"),
        ("\n\nS-1\n", "single"),
        ("S-1\n", "single"),
    ],
)
def test_auto_decides_the_layout_from_the_first_non_blank_line(text: str, layout: str) -> None:
    assert parse(text).layout == layout


def test_after_guessing_single_a_line_with_a_separator_is_a_problem() -> None:
    parsed = parse("AAAA\nBB,BB\nCCCC\n")
    assert codes(parsed) == [(1, None, "AAAA"), (3, None, "CCCC")]
    assert problems(parsed) == [(2, "malformed_line")]


def test_after_guessing_pair_a_line_without_a_separator_is_a_problem() -> None:
    parsed = parse("1001,S-1\nS-2\n1003,S-3\n")
    assert codes(parsed) == [(1, "1001", "S-1"), (3, "1003", "S-3")]
    assert problems(parsed) == [(2, "malformed_line")]


# --- problems -----------------------------------------------------------------------------------


def test_too_many_fields_in_a_pair_line_is_a_problem() -> None:
    parsed = parse("1001,S-1\n1002,S-2,extra\n")
    assert problems(parsed) == [(2, "too_many_fields")]
    assert "found 3" in parsed.problems[0].reason


def test_an_empty_secret_is_a_problem_in_every_layout() -> None:
    assert problems(parse("1001,S-1\n1002,\n1003, \n")) == [(2, "empty_secret"), (3, "empty_secret")]
    assert problems(parse("card_no,secret,note\n1001,,x\n")) == [(2, "empty_secret")]


def test_a_csv_row_of_the_wrong_width_is_malformed() -> None:
    parsed = parse("card_no,secret,expiry\n1001,S-1\n1002,S-2,2030-01-01,more\n1003,S-3,\n")
    assert codes(parsed) == [(4, "1003", "S-3")]
    assert problems(parsed) == [(2, "malformed_line"), (3, "malformed_line")]
    assert parsed.problems[0].reason == "the row has 2 fields, the header has 3"


def test_a_csv_quote_left_open_is_malformed_and_names_where_the_row_ended() -> None:
    parsed = parse('card_no,secret\n1001,"S-1\n1002,S-2\n')
    assert problems(parsed) == [(2, "malformed_line")]
    assert "line 3" in parsed.problems[0].reason


@pytest.mark.parametrize("value", ["2030-13-01", "2030-02-30", "tomorrow", "20300101", "30-01-01", "2030-1-1-1"])
def test_an_expiry_that_is_not_a_date_is_a_problem(value: str) -> None:
    parsed = parse(f"card_no,secret,expiry\n1001,S-1,{value}\n1002,S-2,2030-01-01\n")
    assert problems(parsed) == [(2, "bad_date")]
    assert codes(parsed) == [(3, "1002", "S-2")]


def test_a_repeated_code_is_a_problem_naming_the_first_line() -> None:
    parsed = parse("AAAA\nBBBB\n\nAAAA\nAAAA\n")
    assert codes(parsed) == [(1, None, "AAAA"), (2, None, "BBBB")]
    assert problems(parsed) == [(4, "duplicate_in_file"), (5, "duplicate_in_file")]
    assert all("line 1" in problem.reason for problem in parsed.problems)


def test_a_repeated_card_and_secret_pair_is_a_duplicate_but_a_shared_secret_is_not() -> None:
    parsed = parse("1001,S-1\n1002,S-1\n1001,S-1\n")
    assert codes(parsed) == [(1, "1001", "S-1"), (2, "1002", "S-1")]
    assert problems(parsed) == [(3, "duplicate_in_file")]
    assert parsed.problems[0].reason == "the same card number and secret already appear on line 1"


def test_problems_come_in_line_order_and_every_data_line_is_accounted_for_once() -> None:
    parsed = parse("1001,S-1\n1001,S-1\nS-3\n1004,\n1005,S-5,x\n1006,S-6\n")
    assert problems(parsed) == [
        (2, "duplicate_in_file"),
        (3, "malformed_line"),
        (4, "empty_secret"),
        (5, "too_many_fields"),
    ]
    assert [line.line_no for line in parsed.lines] == [1, 6]


SECRET = "Zq9-SECRET-7Kx"


@pytest.mark.parametrize(
    ("text", "layout", "code"),
    [
        (f"1001,S-1\n{SECRET}\n", "auto", "malformed_line"),
        (f"AAAA\n1002,{SECRET}\n", "auto", "malformed_line"),
        (f"1001,S-1\n1002,{SECRET},{SECRET}\n", "auto", "too_many_fields"),
        (f"card_no,secret\n1001,{SECRET},{SECRET}\n", "auto", "malformed_line"),
        (f'card_no,secret\n1001,"{SECRET}\n{SECRET}\n', "auto", "malformed_line"),
        (f"card_no,secret,expiry\n1001,{SECRET},{SECRET}\n", "auto", "bad_date"),
        (f"card_no,secret,expiry\n1001,{SECRET},2030-02-31\n", "auto", "bad_date"),
        (f"{SECRET}\n{SECRET}\n", "auto", "duplicate_in_file"),
        (f"1001,{SECRET}\n1001,{SECRET}\n", "auto", "duplicate_in_file"),
        (f",{SECRET}\n,{SECRET}\n", "pair", "duplicate_in_file"),
        ("1001,S-1\n1002,\n", "auto", "empty_secret"),
        (f"1001,S-1\n{SECRET},\n", "auto", "empty_secret"),
        (f"secret,card_no\n,{SECRET}\n", "auto", "empty_secret"),
        (f"{SECRET},S-1\n{SECRET},S-1\n", "auto", "duplicate_in_file"),
    ],
)
def test_no_problem_reason_ever_contains_the_secret(text: str, layout: str, code: str) -> None:
    parsed = parse(text, layout=layout)
    problem = only_problem(parsed)
    assert problem.code == code
    assert SECRET not in problem.reason
    assert "SECRET" not in problem.reason


def test_a_code_line_does_not_show_its_secret_in_its_repr() -> None:
    line = parse(f"1001,{SECRET}\n").lines[0]
    assert SECRET not in repr(line)
    assert SECRET not in f"{line}"
    assert "1001" in repr(line)


def test_parsing_leaves_the_garbage_collector_as_it_found_it() -> None:
    assert gc.isenabled()
    parse("AAAA\n")
    with pytest.raises(ImportFileError):
        parse("card_no\n1001\n", layout="csv")
    assert gc.isenabled()
    gc.disable()
    try:
        parse("AAAA\n")
        assert not gc.isenabled()
    finally:
        gc.enable()


# --- property -----------------------------------------------------------------------------------

# Characters a field can hold without being cut or trimmed: no separators, no
# whitespace, no line breaks or other control characters, no BOM.
_field_text = st.text(
    alphabet=st.characters(
        codec="utf-8",
        exclude_categories=("Cc", "Cs", "Zs", "Zl", "Zp"),
        exclude_characters=",，\t\ufeff",
    ),
    min_size=1,
    max_size=12,
)


def _is_column_name(field: str) -> bool:
    return field.strip('"').lower().replace("-", "_") in SECRET_COLUMNS | CARD_COLUMNS | EXPIRY_COLUMNS


@given(
    pairs=st.lists(st.tuples(_field_text, _field_text), min_size=1, max_size=30),
    blanks=st.lists(st.integers(min_value=0, max_value=2), min_size=31, max_size=31),
    newline=st.sampled_from(["\n", "\r\n", "\r"]),
    padding=st.sampled_from(["", " ", "\u3000"]),
    blank=st.sampled_from(["", " ", "\t", "\u3000", ","]),
)
def test_pairs_written_as_a_file_come_back_with_their_line_numbers(
    pairs: list[tuple[str, str]], blanks: list[int], newline: str, padding: str, blank: str
) -> None:
    # A first line made of column names is a header, not a code (tested above).
    assume(not all(_is_column_name(field) for field in pairs[0]))
    written: list[str] = []
    first_line_of: dict[tuple[str, str], int] = {}
    expected_codes: list[tuple[int, str | None, str]] = []
    expected_problems: list[tuple[int, str]] = []
    for (card, secret), blank_lines in zip(pairs, blanks, strict=False):
        written.extend([blank] * blank_lines)
        written.append(f"{padding}{card}{padding},{padding}{secret}{padding}")
        line_no = len(written)
        first = first_line_of.setdefault((card, secret), line_no)
        if first == line_no:
            expected_codes.append((line_no, card, secret))
        else:
            expected_problems.append((line_no, f"line {first}"))

    parsed = parse_code_file(newline.join(written).encode(), layout="pair")

    assert codes(parsed) == expected_codes
    assert [(p.line_no, p.reason.rsplit(" on ", 1)[-1]) for p in parsed.problems] == expected_problems
    assert {p.code for p in parsed.problems} <= {"duplicate_in_file"}


# --- streaming ----------------------------------------------------------------------------------


def chunked(*chunks: bytes) -> CodeSource:
    return CodeSource(lambda: iter(chunks))


def streamed(source: CodeSource, **options: str) -> tuple[list[tuple[int, str | None, str]], ProblemLog]:
    log = ProblemLog()
    lines = [
        (line.line_no, line.card_no, line.secret)
        for block in read_code_file(source, problems=log, **options)
        for line in block
    ]
    return lines, log


@given(
    pairs=st.lists(st.tuples(_field_text, _field_text), min_size=1, max_size=20),
    newline=st.sampled_from(["\n", "\r\n", "\r"]),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "gb18030"]),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=12),
)
def test_a_file_cut_into_chunks_anywhere_reads_as_the_whole(
    pairs: list[tuple[str, str]], newline: str, encoding: str, cuts: list[int]
) -> None:
    """Chunk boundaries may split a line, a CRLF, a BOM or a multi-byte character: none of it shows."""
    assume(not all(_is_column_name(field) for field in pairs[0]))
    text = newline.join(f"{card},{secret}" for card, secret in pairs) + newline
    try:
        data = text.encode(encoding)
    except UnicodeEncodeError:
        assume(False)
    points = sorted({0, len(data), *(cut % (len(data) + 1) for cut in cuts)})
    pieces = [data[a:b] for a, b in pairwise(points)]

    # Named for GB18030: a short GBK text can be valid UTF-8 too, and detection rightly prefers UTF-8.
    named = {"encoding": encoding} if encoding == "gb18030" else {}

    lines, log = streamed(chunked(*pieces), layout="pair", **named)

    assert lines == [(n, card, secret) for n, (card, secret) in enumerate(pairs, start=1)]
    assert log.total == 0


def test_a_stream_reads_its_source_only_as_far_as_it_is_pulled() -> None:
    pulled = []

    def chunks() -> Iterator[bytes]:
        for n in range(1_000):
            pulled.append(n)
            yield b"".join(b"CODE%06d\n" % (n * 100 + i) for i in range(100))

    blocks = iter(read_code_file(CodeSource(chunks)))
    first = next(blocks)

    assert first[0] == CodeLine(1, None, "CODE000000", None)
    assert len(pulled) <= 2  # a block is at most a chunk's lines, plus the line it had begun


def test_the_problem_log_keeps_the_lowest_line_numbers_and_counts_them_all() -> None:
    log = ProblemLog(limit=3)
    for line_no in [9, 4, 7, 1, 8, 2, 6]:
        log.note(line_no, "malformed_line", f"line {line_no}")

    assert [problem.line_no for problem in log.first] == [1, 2, 4]
    assert log.total == 7
    log.count_more(5)
    assert log.total == 12


def test_an_all_invalid_file_keeps_only_the_first_problems_whatever_its_length() -> None:
    log = ProblemLog()
    lines = [
        line
        for block in read_code_file(chunked(b"1001,S-1\n" + b"one-field\n" * 50_000), problems=log)
        for line in block
    ]

    assert lines == [CodeLine(1, "1001", "S-1", None)]
    assert log.total == 50_000
    assert [problem.line_no for problem in log.first] == list(range(2, 202))


def test_gbk_after_a_long_ascii_start_is_still_read_as_gbk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parsing, "READ_SIZE", 16)
    data = b"".join(b"CODE%06d\n" % n for n in range(100)) + "卡密甲乙\n".encode("gbk")

    stream = read_code_file(CodeSource.of_bytes(data))
    lines = [line for block in stream for line in block]

    assert stream.encoding == "gb18030"
    assert lines[-1] == CodeLine(101, None, "卡密甲乙", None)


def test_a_later_line_that_does_not_decode_is_refused_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parsing, "READ_SIZE", 16)
    data = "甲乙\n".encode() + b"".join(b"CODE%06d\n" % n for n in range(100)) + "丙丁\n".encode("gbk")

    with pytest.raises(ImportFileError, match="line 102 is not valid utf-8") as caught:
        parse_code_file(data)

    assert caught.value.details["line_no"] == 102
    with pytest.raises(ImportFileError, match=r"not valid utf-8 \(line 102\)"):
        parse_code_file(data, encoding="utf-8")


def test_a_nul_character_is_refused_naming_its_line() -> None:
    with pytest.raises(ImportFileError, match="not readable") as caught:
        parse_code_file(b"AAAA\nBBBB\nCC\x00CC\n")
    assert caught.value.details["line_no"] == 3


def test_a_line_longer_than_any_code_file_holds_is_refused_before_it_fills_memory() -> None:
    endless = chunked(b"AAAA\nBBBB\n", *([b"X" * 8192] * 100))

    with pytest.raises(ImportFileError, match="line 3 is longer than") as caught:
        streamed(endless)

    assert caught.value.details["line_no"] == 3
