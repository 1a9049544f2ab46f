"""The rule language evaluates features and nothing else: whatever an operator types, it parses into a
small tree or is refused with the position of the problem; it never reaches Python."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kaquan.risk import FEATURES, InvalidRule
from kaquan.risk.expressions import MAX_DEPTH, holds, parse


def hits(expression: str, **features: object) -> bool:
    return holds(parse(expression, FEATURES), {name.replace("__", "."): value for name, value in features.items()})  # type: ignore[misc]


def test_a_velocity_rule_hits_only_past_its_threshold() -> None:
    rule = "ip.orders_1m > 5 and sku.high_demand"
    assert hits(rule, ip__orders_1m=6, sku__high_demand=True)
    assert not hits(rule, ip__orders_1m=5, sku__high_demand=True)
    assert not hits(rule, ip__orders_1m=50, sku__high_demand=False)


def test_arithmetic_lists_and_precedence() -> None:
    assert hits("device.orders_1h * 2 + 1 >= 7", device__orders_1h=3)
    assert hits("not (order.quantity < 3) or false", order__quantity=3)
    assert hits("request.action in ['shop.order', 'flash.purchase']", request__action="shop.order")
    assert hits("request.action not in ['agent.order']", request__action="shop.order")
    assert hits("-order.quantity < 0 and order.quantity % 2 == 1", order__quantity=5)


def test_a_missing_feature_makes_comparisons_false_and_arithmetic_null() -> None:
    assert not hits("page.submit_ms < 800")
    assert not hits("page.submit_ms + 1 > 0")
    assert not hits("ip.orders_1m / 0 > 1", ip__orders_1m=3)
    assert hits("page.submit_ms == null or page.submit_ms < 800")


def test_a_number_or_string_result_is_no_hit() -> None:
    assert not hits("order.quantity", order__quantity=3)
    assert not hits("request.action", request__action="shop.order")


def refused(expression: str) -> InvalidRule:
    with pytest.raises(InvalidRule) as caught:
        parse(expression, FEATURES)
    assert caught.value.status == 400 and caught.value.code == "invalid_rule"
    return caught.value


@pytest.mark.parametrize(
    ("expression", "position"),
    [
        ("ip.__class__ == 1", 0),  # attribute access to a dunder
        ("__import__('os')", 0),
        ("ip.orders_1m.__class__.__mro__", 0),
        ("ip.orders_1m() > 1", 12),  # no calls
        ("().__class__", 2),
        ("ip.orders_1m[0]", 12),  # no indexing
        ("2 ** 999999999 > 1", 2),  # no exponent
        ("10000000000000000000000 > 1", 0),  # literals are bounded
        ("ip.orders_1m > 5 and", 20),
        ("ip.orders_1m >> 5", 14),
        ("ip.orders_1m > 5; import os", 16),
        ("os.system", 0),  # only features are names
        ("lambda: 1", 6),
    ],
)
def test_anything_but_the_grammar_is_refused_with_its_position(expression: str, position: int) -> None:
    error = refused(expression)
    assert error.details["position"] == position
    assert error.details["column"] == position + 1


def test_deep_nesting_and_huge_expressions_are_refused() -> None:
    assert "nested" in refused("(" * (MAX_DEPTH + 1) + "1" + ")" * (MAX_DEPTH + 1)).message
    assert "nested" in refused("not " * (MAX_DEPTH + 1) + "true").message
    assert "nested" in refused("-" * (MAX_DEPTH + 1) + "1 > 0").message
    assert "characters" in refused("1 + " * 200 + "1").message
    assert "tokens" in refused("+".join(["1"] * 120)).message


def test_runaway_arithmetic_is_null_not_a_huge_number() -> None:
    product = " * ".join(["1000000000000"] * 10)
    assert not hits(f"{product} > 0")


@given(st.text(max_size=120))
def test_any_text_parses_or_is_refused_cleanly(text: str) -> None:
    try:
        tree = parse(text, FEATURES)
    except InvalidRule as error:
        assert 0 <= error.details["position"] <= len(text)
        return
    holds(tree, {})
