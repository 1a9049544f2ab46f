"""One per-order quantity rule for every way in (shop, flash sale, open API, marketplace): 1 up to the lowest cap."""

import pytest

from kaquan.orders.errors import InvalidQuantity, check_quantity


@pytest.mark.parametrize(("quantity", "caps"), [(1, (1,)), (5, (5, 10)), (5, (10, 5, 20))])
def test_a_quantity_from_one_to_the_lowest_cap_passes(quantity: int, caps: tuple[int, ...]) -> None:
    check_quantity(quantity, *caps)


@pytest.mark.parametrize(("quantity", "caps", "cap"), [(0, (10,), 10), (-1, (10,), 10), (6, (10, 5, 20), 5)])
def test_any_other_quantity_is_refused_naming_the_lowest_cap(quantity: int, caps: tuple[int, ...], cap: int) -> None:
    with pytest.raises(InvalidQuantity) as refused:
        check_quantity(quantity, *caps)

    assert (refused.value.code, refused.value.status) == ("invalid_quantity", 400)
    assert refused.value.details == {"quantity": quantity, "max": cap}
