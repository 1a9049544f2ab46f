"""The lookup secret (查单密码): 80 bits, readable aloud, stable per order, forgiving of spacing."""

from kaquan.kit.crypto import new_key
from kaquan.orders.service import OrderKeys


def test_a_lookup_secret_is_sixteen_unambiguous_characters_in_groups_of_four() -> None:
    secret = OrderKeys(new_key()).lookup_secret("2611250000000001")

    groups = secret.split("-")
    assert [len(g) for g in groups] == [4, 4, 4, 4]
    assert not set("".join(groups)) & set("01IO")


def test_the_secret_is_stable_per_order_and_differs_between_orders_and_keys() -> None:
    key = new_key()
    keys = OrderKeys(key)

    assert keys.lookup_secret("A1") == OrderKeys(key).lookup_secret("A1")
    assert keys.lookup_secret("A1") != keys.lookup_secret("A2")
    assert keys.lookup_secret("A1") != OrderKeys(new_key()).lookup_secret("A1")


def test_checking_ignores_case_dashes_and_spaces_but_nothing_else() -> None:
    keys = OrderKeys(new_key())
    secret = keys.lookup_secret("A1")

    assert keys.check("A1", secret)
    assert keys.check("A1", secret.lower().replace("-", " "))
    assert not keys.check("A2", secret)
    assert not keys.check("A1", secret[:-1])
    assert not keys.check("A1", "")
