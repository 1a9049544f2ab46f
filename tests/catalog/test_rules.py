"""The per-SKU code format rule: what it accepts, what it refuses, and how it says so."""

import pytest
from pydantic import ValidationError

from kaquan.catalog.rules import CodeRule
from kaquan.inventory.intake.parsing import CodeLine, LineProblem, ProblemLog, keep_valid, parse_code_file

SECRET = "Zq9SECRET7Kx"


def test_a_rule_without_constraints_accepts_any_code() -> None:
    rule = CodeRule()
    assert rule.violation(None, "x") is None
    assert rule.violation("1001", "任何东西 at all!") is None


@pytest.mark.parametrize(
    ("min_length", "max_length", "secret", "reason"),
    [
        (10, 12, "1234567", "secret has 7 characters, the rule needs 10–12"),
        (10, 12, "1234567890123", "secret has 13 characters, the rule needs 10–12"),
        (10, None, "123456789", "secret has 9 characters, the rule needs at least 10"),
        (None, 4, "12345", "secret has 5 characters, the rule needs at most 4"),
        (16, 16, "1", "secret has 1 character, the rule needs exactly 16"),
        (10, 12, "1234567890", None),
        (10, 12, "123456789012", None),
        (1, None, "1", None),
        (None, 4, "1234", None),
    ],
)
def test_length_bounds_are_inclusive_and_the_reason_names_them(
    min_length: int | None, max_length: int | None, secret: str, reason: str | None
) -> None:
    rule = CodeRule(min_length=min_length, max_length=max_length)
    assert rule.violation(None, secret) == reason


def test_length_counts_characters_not_bytes() -> None:
    assert CodeRule(min_length=4, max_length=4).violation(None, "甲乙丙丁") is None


@pytest.mark.parametrize(
    ("alphabet", "good", "bad"),
    [
        ("digits", "0123456789", "01234a"),
        ("upper_alnum", "AZ09", "AZ09a"),
        ("alnum", "aZ09", "aZ-09"),
        ("hex", "09afAF", "09afg"),
        ("23456789ABCDEFGHJKLMNPQRSTUVWXYZ", "K7M2", "K0M2"),
    ],
)
def test_an_alphabet_or_its_shorthand_limits_the_characters(alphabet: str, good: str, bad: str) -> None:
    rule = CodeRule(alphabet=alphabet)
    assert rule.violation(None, good) is None
    assert rule.violation(None, bad) == "secret has characters outside the alphabet"


def test_a_regex_must_match_the_whole_secret() -> None:
    rule = CodeRule(regex=r"[A-Z]{4}-\d{4}")
    assert rule.violation(None, "ABCD-1234") is None
    assert rule.violation(None, "ABCD-12345") == "secret does not match the pattern"
    assert rule.violation(None, "xABCD-1234") == "secret does not match the pattern"


@pytest.mark.parametrize("card_no", [None, ""])
def test_a_required_card_number_must_be_present(card_no: str | None) -> None:
    rule = CodeRule(card_no_required=True)
    assert rule.violation(card_no, SECRET) == "card number missing"
    assert rule.violation("1001", SECRET) is None


def test_a_card_number_pattern_checks_card_numbers_that_are_present() -> None:
    rule = CodeRule(card_no_regex=r"\d{4}")
    assert rule.violation("1001", SECRET) is None
    assert rule.violation(None, SECRET) is None
    assert rule.violation("10011", SECRET) == "card number does not match the pattern"
    assert SECRET not in str(rule.violation(SECRET, "1001"))


def test_the_card_number_is_checked_before_the_secret() -> None:
    rule = CodeRule(card_no_required=True, min_length=100)
    assert rule.violation(None, SECRET) == "card number missing"


@pytest.mark.parametrize(
    "rule",
    [
        CodeRule(min_length=20),
        CodeRule(max_length=3),
        CodeRule(alphabet="digits"),
        CodeRule(regex=r"\d+"),
        CodeRule(card_no_required=True),
        CodeRule(card_no_regex=r"\d{4}"),
    ],
)
def test_no_violation_reason_contains_the_secret(rule: CodeRule) -> None:
    reason = rule.violation("ABC" if rule.card_no_regex else None, SECRET)
    assert reason is not None
    assert SECRET not in reason
    assert "SECRET" not in reason


@pytest.mark.parametrize("field", ["regex", "card_no_regex"])
@pytest.mark.parametrize("pattern", ["(", "[a-", "*", "(?P<x>a)(?P<x>b)"])
def test_a_pattern_that_does_not_compile_is_rejected(field: str, pattern: str) -> None:
    with pytest.raises(ValidationError, match="not a valid regular expression"):
        CodeRule.model_validate({field: pattern})


@pytest.mark.parametrize(
    "fields",
    [
        {"min_length": 0},
        {"max_length": 0},
        {"min_length": 5, "max_length": 4},
        {"alphabet": ""},
        {"lenght": 4},
        {"min_length": "many"},
    ],
)
def test_an_inconsistent_or_unknown_setting_is_rejected(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        CodeRule.model_validate(fields)


def test_equal_bounds_are_allowed() -> None:
    assert CodeRule(min_length=8, max_length=8).violation(None, "12345678") is None


def test_a_rule_is_frozen() -> None:
    rule = CodeRule(min_length=4)
    with pytest.raises(ValidationError):
        rule.min_length = 5  # type: ignore[misc]


def test_a_rule_survives_a_round_trip_through_json_and_compares_equal() -> None:
    rule = CodeRule(min_length=4, max_length=8, alphabet="hex", regex="[0-9a-f]+", card_no_required=True)
    again = CodeRule.model_validate_json(rule.model_dump_json())
    assert again == rule
    assert hash(again) == hash(rule)
    assert again.violation("1001", "ABCD") == "secret does not match the pattern"
    assert CodeRule(alphabet="hex") != CodeRule(alphabet="digits")


def test_a_copy_with_changed_fields_checks_by_the_new_fields() -> None:
    rule = CodeRule(min_length=4)
    stricter = rule.model_copy(update={"min_length": 6})
    assert rule.violation(None, "12345") is None
    assert stricter.violation(None, "12345") == "secret has 5 characters, the rule needs at least 6"


# --- keep_valid ---------------------------------------------------------------------------------


def test_keep_valid_moves_broken_lines_into_the_problem_log_in_line_order() -> None:
    parsed = parse_code_file(b"1001,ABCD1234\n1002,ABC\n1003\n1004,abcd1234\n1006,WXYZ9876\n")
    log = ProblemLog()
    for problem in parsed.problems:
        log.add(problem)

    kept = keep_valid(CodeRule(min_length=8, max_length=8, alphabet="upper_alnum").checker(), parsed.lines, log)

    assert [line.line_no for line in kept] == [1, 5]
    assert [(p.line_no, p.code) for p in log.first] == [(2, "format_rule"), (3, "malformed_line"), (4, "format_rule")]
    assert log.first[0].reason == "secret has 3 characters, the rule needs exactly 8"
    assert log.total == 3


def test_keep_valid_leaves_the_lines_it_was_given_untouched() -> None:
    lines = parse_code_file(b"AAAA\nBB\n").lines
    before = list(lines)
    keep_valid(CodeRule(min_length=4).checker(), lines, ProblemLog())
    assert lines == before


def test_keep_valid_problems_never_contain_the_secret() -> None:
    lines = [CodeLine(1, "1001", SECRET, None), CodeLine(2, None, SECRET + "2", None)]
    log = ProblemLog()
    assert keep_valid(CodeRule(card_no_required=True, regex=r"\d+").checker(), lines, log) == []
    assert log.first == [
        LineProblem(1, "format_rule", "secret does not match the pattern"),
        LineProblem(2, "format_rule", "card number missing"),
    ]
    assert all("SECRET" not in problem.reason for problem in log.first)
