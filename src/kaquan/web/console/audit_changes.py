"""An audit entry's change in words, as the audit page and its downloads show it: `价格：¥19.90 → ¥17.90`,
`状态：在售 → 下架`, in the page's language.

Fields and values are worded from `web/i18n_changes.py` (statuses from the console's own words for orders,
refunds, codes, settlements and flash sales); money is the shop's (`¥19.90`); a field that names a secret
is never shown, whatever it holds; a field without words is shown by its stored name. The raw JSON stays in
the downloads beside the words, for machines.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kaquan.kit.money import display
from kaquan.web.i18n import Translate, translator
from kaquan.web.i18n_identifiers import scope_words

DEFAULT_CURRENCY = "CNY"
# A field whose name says it holds a secret is hidden whatever it holds (`secret` keeps its few safe words).
SECRET_PARTS = ("secret", "password", "passphrase", "private", "sealed", "token_hash", "api_key", "plaintext")
SECRET_NAMES = frozenset({"token", "key", "pin", "totp", "card_secret"})
# Money kept under a name without `_minor`.
MONEY_FIELDS = frozenset({"commission_posted", "fee_posted", "payout_posted"})
MOMENT_ENDINGS = ("_at", "_until")
# Which of the console's status words a status field takes, by the area of the action (`refund.approved` → refund).
STATUS_GROUPS = {
    "order": "order.status",
    "agent_order": "order.status",
    "marketplace_order": "order.status",
    "refund": "refund.status",
    "voucher": "code.status",
    "flashsale": "flash.status",
}


@dataclass(frozen=True)
class Change:
    """One field's change: its label and its old and new values in words (None: the field is on one side only)."""

    label: str
    old: str | None
    new: str | None

    def text(self, t: Translate) -> str:
        values = " → ".join(value for value in (self.old, self.new) if value is not None)
        return f"{self.label}{t('change.colon')}{values}"


def is_secret(field: str) -> bool:
    name = field.lower()
    return name in SECRET_NAMES or any(part in name for part in SECRET_PARTS)


class _Wording:
    def __init__(self, lang: str, action: str, when: Callable[[datetime], str] | None) -> None:
        self.lang = lang
        self.t = translator(lang)
        self.area = action.split(".", 1)[0]
        self.when = when

    def word(self, key: str) -> str | None:
        text = self.t(key)
        return None if text == key else text

    def label(self, field: str) -> str:
        return self.word(f"change.field.{field}") or field

    def value(self, field: str, value: Any, currency: str) -> str:
        if is_secret(field):
            safe = self.word(f"change.value.{field}.{value}") if isinstance(value, str) else None
            return safe or self.t("change.hidden")
        if value is None:
            return self.t("change.none")
        if isinstance(value, bool):
            truth = "true" if value else "false"
            return (
                self.word(f"change.truth.{self.area}:{field}.{truth}")
                or self.word(f"change.truth.{field}.{truth}")
                or self.t(f"common.{'yes' if value else 'no'}")
            )
        if isinstance(value, int) and (field.endswith("_minor") or field in MONEY_FIELDS):
            return _money(value, currency)
        if isinstance(value, int) and field.endswith("_bp"):
            return f"{value / 100:.2f}".rstrip("0").rstrip(".") + "%"
        if isinstance(value, list):
            return self.t("change.list").join(self.value(field, item, currency) for item in value)
        if isinstance(value, dict):
            inner = self.t("change.inner").join(c.text(self.t) for c in self.fields(value, currency))
            return f"（{inner}）" if self.lang == "zh" else f"({inner})"
        if isinstance(value, str):
            return self.text(field, value)
        return str(value)

    def text(self, field: str, value: str) -> str:
        if field in ("status", "order_status", "state"):
            group = "order.status" if field == "order_status" else STATUS_GROUPS.get(self.area)
            if self.area == "settlement":
                return self.word(f"settlement.{value}") or self.word(f"change.state.{value}") or value
            return (group and self.word(f"{group}.{value}")) or self.word(f"change.state.{value}") or value
        if field == "role":
            return self.word(f"role.{value}") or value
        if field == "scopes":
            return scope_words(self.lang, value)
        if field.endswith(MOMENT_ENDINGS) and self.when is not None:
            try:
                moment = datetime.fromisoformat(value)
            except ValueError:
                return value
            return self.when(moment) if moment.tzinfo is not None else value
        return self.word(f"change.value.{field}.{value}") or value

    def fields(self, values: Mapping[str, Any], currency: str) -> list[Change]:
        """A dict nested in a value (a tier, a mapping): each field with its words."""
        here = _currency(values, currency)
        shown = [field for field in values if not _only_context(field, values, values)]
        return [Change(self.label(field), None, self.value(field, values[field], here)) for field in shown]


def _money(minor: int, currency: str) -> str:
    try:
        return display(minor, currency)
    except KeyError:  # a currency the shop does not format: the amount in minor units and its code
        return f"{minor} {currency}"


def _currency(side: Mapping[str, Any], fallback: str) -> str:
    currency = side.get("currency")
    return currency if isinstance(currency, str) and currency else fallback


def _has_money(side: Mapping[str, Any]) -> bool:
    return any(field.endswith("_minor") or field in MONEY_FIELDS for field in side)


def _only_context(field: str, before: Mapping[str, Any], after: Mapping[str, Any]) -> bool:
    """The currency is said by the money it goes with, unless it is itself what changed."""
    if field != "currency" or not (_has_money(before) or _has_money(after)):
        return False
    was = _currency(before, _currency(after, DEFAULT_CURRENCY))
    return was == _currency(after, was)


def changes(
    lang: str,
    action: str,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    *,
    when: Callable[[datetime], str] | None = None,
) -> list[Change]:
    """What changed first (`old → new`), then what was set (the new value alone), then what the entry names for
    context (the old value alone); a field removed with nothing after it reads `old → —`."""
    wording = _Wording(lang, action, when)
    old, new = before or {}, after or {}
    old_currency = _currency(old, _currency(new, DEFAULT_CURRENCY))
    new_currency = _currency(new, old_currency)
    removed = bool(old) and not new
    changed: list[Change] = []
    settled: list[Change] = []
    context: list[Change] = []
    for field in [*new, *(field for field in old if field not in new)]:
        if _only_context(field, old, new):
            continue
        label = wording.label(field)
        if field in new:
            now = wording.value(field, new[field], new_currency)
            was = wording.value(field, old[field], old_currency) if field in old and not is_secret(field) else now
            if was != now:  # in words: the same amount in another currency has changed too
                changed.append(Change(label, was, now))
            else:
                settled.append(Change(label, None, now))
        elif removed:
            context.append(Change(label, wording.value(field, old[field], old_currency), wording.t("change.none")))
        else:
            context.append(Change(label, None, wording.value(field, old[field], old_currency)))
    return changed + settled + context


def change_text(
    lang: str,
    action: str,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    *,
    when: Callable[[datetime], str] | None = None,
) -> str:
    """The change as one line of text, for a download's cell."""
    t = translator(lang)
    return t("change.between").join(change.text(t) for change in changes(lang, action, before, after, when=when))
