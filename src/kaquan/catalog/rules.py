"""The per-SKU format rule a code must follow, checked when codes are imported.

A SKU's codes share a shape (say, 16 characters of an alphabet without 0/O and
1/I); a line that breaks it is almost always a wrong file or a shifted column,
and is better caught before the code is sold than after.
"""

import re
import string
from collections.abc import Callable, Mapping
from typing import Any, Final, Self

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from kaquan.kit.bounds import INT32_MAX

ALPHABET_SHORTHANDS: Final = {
    "digits": string.digits,
    "upper_alnum": string.digits + string.ascii_uppercase,
    "alnum": string.digits + string.ascii_letters,
    "hex": string.hexdigits,
}


class CodeRule(BaseModel):
    """What every code of a SKU looks like; an unset field does not constrain.

    `alphabet` is either the allowed characters themselves or one of the
    shorthands digits, upper_alnum, alnum, hex (either case). `regex` and
    `card_no_regex` must match the whole value. `card_no_regex` checks card
    numbers that are present; `card_no_required` makes them mandatory.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_length: int | None = Field(default=None, ge=1, le=INT32_MAX)
    max_length: int | None = Field(default=None, ge=1, le=INT32_MAX)
    alphabet: str | None = Field(default=None, min_length=1)
    regex: str | None = None
    card_no_required: bool = False
    card_no_regex: str | None = None

    # Compiled once per rule. Reading a pydantic private attribute goes through
    # __getattr__ (microseconds), so loops fetch the compiled check once via `checker()`.
    _compiled: "_CompiledRule" = PrivateAttr()

    @field_validator("regex", "card_no_regex")
    @classmethod
    def _must_compile(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return value

    @model_validator(mode="after")
    def _lengths_in_order(self) -> Self:
        if self.min_length is not None and self.max_length is not None and self.max_length < self.min_length:
            raise ValueError(f"max_length {self.max_length} is below min_length {self.min_length}")
        return self

    def model_post_init(self, context: Any, /) -> None:
        self._compiled = _CompiledRule(self)

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy, recompiled when `update` changes fields (pydantic copies private attributes as is)."""
        copy = super().model_copy(update=update, deep=deep)
        if update:
            copy._compiled = _CompiledRule(copy)
        return copy

    def violation(self, card_no: str | None, secret: str) -> str | None:
        """None if the code follows the rule, else the first broken part, without the secret."""
        return self._compiled.violation(card_no, secret)

    def checker(self) -> Callable[[str | None, str], str | None]:
        """`violation` as a plain function, for loops over many lines."""
        return self._compiled.violation


class _CompiledRule:
    """A `CodeRule` with its alphabet and patterns compiled, in plain slots for fast access."""

    __slots__ = (
        "allowed",
        "card_no_required",
        "card_pattern",
        "length_wanted",
        "max_length",
        "min_length",
        "pattern",
    )

    def __init__(self, rule: CodeRule) -> None:
        self.min_length = rule.min_length
        self.max_length = rule.max_length
        self.card_no_required = rule.card_no_required
        alphabet = rule.alphabet
        self.allowed = None if alphabet is None else frozenset(ALPHABET_SHORTHANDS.get(alphabet, alphabet))
        self.pattern = None if rule.regex is None else re.compile(rule.regex)
        self.card_pattern = None if rule.card_no_regex is None else re.compile(rule.card_no_regex)
        low, high = rule.min_length, rule.max_length
        if low is not None and high is not None:
            self.length_wanted = f"exactly {low}" if low == high else f"{low}–{high}"
        else:
            self.length_wanted = f"at least {low}" if low is not None else f"at most {high}"

    def __eq__(self, other: object) -> bool:
        # Pydantic compares private attributes too; two equal rules compile to equal parts.
        if not isinstance(other, _CompiledRule):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self.__slots__)

    __hash__ = None  # type: ignore[assignment]

    def violation(self, card_no: str | None, secret: str) -> str | None:
        if not card_no:
            if self.card_no_required:
                return "card number missing"
        elif self.card_pattern is not None and self.card_pattern.fullmatch(card_no) is None:
            # Not echoed: with swapped columns, the "card number" is a secret.
            return "card number does not match the pattern"
        length = len(secret)
        if (self.min_length is not None and length < self.min_length) or (
            self.max_length is not None and length > self.max_length
        ):
            noun = "character" if length == 1 else "characters"
            return f"secret has {length} {noun}, the rule needs {self.length_wanted}"
        if self.allowed is not None and not self.allowed.issuperset(secret):
            return "secret has characters outside the alphabet"
        if self.pattern is not None and self.pattern.fullmatch(secret) is None:
            return "secret does not match the pattern"
        return None
