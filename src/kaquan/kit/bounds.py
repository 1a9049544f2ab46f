"""Bounds of the integers a client sends: no value a database column cannot hold reaches a query.

SQLite keeps 64-bit integers and PostgreSQL's `integer` 32 bits; a larger value fails deep
in the driver (an OverflowError or a DataError: a 500). Every integer input (path, query,
body, form) is typed with one of these where it enters, so the schema refuses it with a
422 and the published OpenAPI document says what is accepted.
"""

from typing import Annotated

from annotated_types import Interval

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

Int32 = Annotated[int, Interval(ge=INT32_MIN, le=INT32_MAX)]
"""A value stored in a 32-bit `Integer` column (prices, costs, basis points)."""

Int64 = Annotated[int, Interval(ge=INT64_MIN, le=INT64_MAX)]
"""A value stored in a 64-bit column (ledger amounts, credit limits, serials), or checked by a rule before any
query (an order's quantity: past its cap it is 400 `invalid_quantity`)."""

Id = Annotated[int, Interval(ge=1, le=INT32_MAX)]
"""The id of a row of a table keyed by `Integer` (products, SKUs, agents, users, batches, events, rules)."""

BigRowId = Annotated[int, Interval(ge=1, le=INT64_MAX)]
"""The id of a row of a table keyed by `BigId` (orders, tokens, audit entries, postings, deliveries)."""


def id_from_text(text: str, *, maximum: int = INT32_MAX) -> int | None:
    """The id `text` spells in ASCII digits, or None: not such digits ("²" is one to `isdigit`), or too large."""
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(maximum)):
        return None
    value = int(text)
    return value if 1 <= value <= maximum else None
