"""AgentClient and AsyncAgentClient: the open API's endpoints as methods, the same for both."""

import re
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import quote

import httpx

from .models import (
    ApiError,
    Balance,
    LedgerEntry,
    NewOrder,
    Order,
    Product,
    Statement,
    StatementFile,
    balance_from,
    entry_from,
    order_from,
    product_from,
    statement_from,
)
from .wire import Credentials, answer, encode_query, file_answer, json_body

Mode = Literal["sync", "async"]
Format = Literal["csv", "xlsx", "pdf"]
Query = Sequence[tuple[str, str]]
_PREFIX = "/open/v1"
MEDIA_TYPES: dict[str, str] = {
    "csv": "text/csv",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pdf": "application/pdf",
}
_FILENAME = re.compile(r'filename="([^"]+)"')


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("pass an aware datetime (e.g. datetime(..., tzinfo=UTC)): kaquan cannot guess the zone")
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _range(since: datetime | None, until: datetime | None) -> list[tuple[str, str]]:
    bounds = (("since", since), ("until", until))
    return [(name, _iso(moment)) for name, moment in bounds if moment is not None]


class _Endpoints:
    """Builds the signed request of each endpoint and reads its answer; the subclasses only send."""

    def __init__(self, base_url: str, key_id: str, secret: str) -> None:
        self._base = base_url.rstrip("/") + _PREFIX
        self._key = Credentials(key_id, secret)

    def _request(
        self,
        method: str,
        path: str,
        query: Query = (),
        payload: dict[str, Any] | None = None,
        *,
        accept: str = "application/json",
    ) -> httpx.Request:
        url = self._base + path + (f"?{encode_query(query)}" if query else "")
        headers = {"Accept": accept}
        content = None
        if payload is not None:
            headers["Content-Type"] = "application/json"
            content = json_body(payload)
        request = httpx.Request(method, url, headers=headers, content=content)
        self._key.sign(request)
        return request

    def _order_request(
        self, out_order_no: str, sku: str, quantity: int, mode: Mode, allow_partial: bool
    ) -> httpx.Request:
        payload = {
            "out_order_no": out_order_no,
            "sku": sku,
            "quantity": quantity,
            "mode": mode,
            "allow_partial": allow_partial,
        }
        return self._request("POST", "/orders", payload=payload)

    def _batch_request(self, orders: Sequence[NewOrder]) -> httpx.Request:
        payload = {
            "orders": [
                {
                    "out_order_no": o.out_order_no,
                    "sku": o.sku,
                    "quantity": o.quantity,
                    "mode": o.mode,
                    "allow_partial": o.allow_partial,
                }
                for o in orders
            ]
        }
        return self._request("POST", "/orders/batch", payload=payload)

    def _batch_of(self, response: httpx.Response) -> list[Order | ApiError]:
        """Each order of the batch, or the ApiError that refused it (the batch itself succeeded)."""
        results: list[Order | ApiError] = []
        for item in answer(response)["results"]:
            if "order" in item:
                results.append(order_from(item["order"], self._key.open_field))
            else:
                error = item["error"]
                results.append(ApiError(item["status"], error["code"], error["message"], error.get("details")))
        return results

    def _order_of(self, response: httpx.Response) -> Order:
        return order_from(answer(response)["order"], self._key.open_field)

    def _order_path(self, out_order_no: str) -> str:
        return "/orders/" + quote(out_order_no, safe=":")

    def _statements_request(self, limit: int) -> httpx.Request:
        return self._request("GET", "/statements", [("limit", str(limit))])

    @staticmethod
    def _statements_of(response: httpx.Response) -> list[Statement]:
        return [statement_from(raw) for raw in answer(response)["statements"]]

    @staticmethod
    def _statement_path(statement_id: int) -> str:
        if type(statement_id) is not int or statement_id < 1:
            raise ValueError(f"a statement id is a whole number from 1, not {statement_id!r}")
        return f"/statements/{statement_id}"

    def _file_request(self, statement_id: int, fmt: Format) -> httpx.Request:
        if fmt not in MEDIA_TYPES:
            raise ValueError(f"a statement downloads as {', '.join(MEDIA_TYPES)}, not {fmt!r}")
        path = f"{self._statement_path(statement_id)}/{fmt}"
        return self._request("GET", path, accept=f"{MEDIA_TYPES[fmt]}, application/json")

    @staticmethod
    def _file_of(response: httpx.Response, statement_id: int, fmt: Format) -> StatementFile:
        content = file_answer(response)
        named = _FILENAME.search(response.headers.get("Content-Disposition", ""))
        media_type = response.headers.get("Content-Type", MEDIA_TYPES[fmt])
        return StatementFile(named.group(1) if named else f"statement-{statement_id}.{fmt}", media_type, content)

    @staticmethod
    def _page(response: httpx.Response, key: str, query: Query) -> tuple[list[Any], Query | None]:
        """One page's items, and the query of the next page (None after the last)."""
        body = answer(response)
        cursor = body.get("next_cursor")
        return body[key], ([*query, ("cursor", cursor)] if cursor else None)


class AgentClient(_Endpoints):
    """The open API, blocking. Use as a context manager, or call `close()`.

    Every call raises `ApiError` for an error answer; network errors are httpx's own.
    `place_order` is safe to retry with the same `out_order_no` (same body → same order).
    """

    def __init__(
        self,
        base_url: str,
        key_id: str,
        secret: str,
        *,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, key_id, secret)
        self._http = httpx.Client(timeout=timeout, transport=transport)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def products(self) -> list[Product]:
        body = answer(self._http.send(self._request("GET", "/products")))
        return [product_from(raw) for raw in body["products"]]

    def place_order(
        self, out_order_no: str, sku: str, quantity: int, *, mode: Mode = "sync", allow_partial: bool = False
    ) -> Order:
        return self._order_of(self._http.send(self._order_request(out_order_no, sku, quantity, mode, allow_partial)))

    def place_orders(self, orders: Sequence[NewOrder]) -> list[Order | ApiError]:
        """Up to 200 orders in one request; each comes back as an Order or the ApiError that refused it."""
        return self._batch_of(self._http.send(self._batch_request(orders)))

    def order(self, out_order_no: str) -> Order:
        return self._order_of(self._http.send(self._request("GET", self._order_path(out_order_no))))

    def orders(self, since: datetime, until: datetime, *, limit: int = 100) -> Iterator[Order]:
        """Orders created in [since, until), oldest first, without codes; fetches page after page."""
        for raw in self._pages("/orders", [*_range(since, until), ("limit", str(limit))], "orders"):
            yield order_from(raw, self._key.open_field)

    def balance(self) -> Balance:
        return balance_from(answer(self._http.send(self._request("GET", "/balance"))))

    def ledger(self, since: datetime | None = None, until: datetime | None = None) -> Iterator[LedgerEntry]:
        for raw in self._pages("/ledger", _range(since, until), "entries"):
            yield entry_from(raw)

    def statements(self, *, limit: int = 100) -> list[Statement]:
        """Your confirmed settlement statements, newest first, without their lines (`limit` 1–500)."""
        return self._statements_of(self._http.send(self._statements_request(limit)))

    def statement(self, statement_id: int) -> Statement:
        """One of your confirmed statements with its lines; ApiError 404 `statement_not_found` for any other id."""
        return statement_from(answer(self._http.send(self._request("GET", self._statement_path(statement_id)))))

    def statement_file(self, statement_id: int, fmt: Format = "csv") -> StatementFile:
        """One of your confirmed statements as a file: CSV (UTF-8 with BOM), XLSX or PDF."""
        return self._file_of(self._http.send(self._file_request(statement_id, fmt)), statement_id, fmt)

    def _pages(self, path: str, query: Query, key: str) -> Iterator[Any]:
        page_query: Query | None = query
        while page_query is not None:
            items, page_query = self._page(self._http.send(self._request("GET", path, page_query)), key, query)
            yield from items


class AsyncAgentClient(_Endpoints):
    """The open API for asyncio: the methods of `AgentClient`, awaited (`orders` and `ledger` are async iterators)."""

    def __init__(
        self,
        base_url: str,
        key_id: str,
        secret: str,
        *,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, key_id, secret)
        self._http = httpx.AsyncClient(timeout=timeout, transport=transport)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def products(self) -> list[Product]:
        body = answer(await self._http.send(self._request("GET", "/products")))
        return [product_from(raw) for raw in body["products"]]

    async def place_order(
        self, out_order_no: str, sku: str, quantity: int, *, mode: Mode = "sync", allow_partial: bool = False
    ) -> Order:
        request = self._order_request(out_order_no, sku, quantity, mode, allow_partial)
        return self._order_of(await self._http.send(request))

    async def place_orders(self, orders: Sequence[NewOrder]) -> list[Order | ApiError]:
        """Up to 200 orders in one request; each comes back as an Order or the ApiError that refused it."""
        return self._batch_of(await self._http.send(self._batch_request(orders)))

    async def order(self, out_order_no: str) -> Order:
        return self._order_of(await self._http.send(self._request("GET", self._order_path(out_order_no))))

    async def orders(self, since: datetime, until: datetime, *, limit: int = 100) -> AsyncIterator[Order]:
        async for raw in self._pages("/orders", [*_range(since, until), ("limit", str(limit))], "orders"):
            yield order_from(raw, self._key.open_field)

    async def balance(self) -> Balance:
        return balance_from(answer(await self._http.send(self._request("GET", "/balance"))))

    async def ledger(self, since: datetime | None = None, until: datetime | None = None) -> AsyncIterator[LedgerEntry]:
        async for raw in self._pages("/ledger", _range(since, until), "entries"):
            yield entry_from(raw)

    async def statements(self, *, limit: int = 100) -> list[Statement]:
        """Your confirmed settlement statements, newest first, without their lines (`limit` 1–500)."""
        return self._statements_of(await self._http.send(self._statements_request(limit)))

    async def statement(self, statement_id: int) -> Statement:
        """One of your confirmed statements with its lines; ApiError 404 `statement_not_found` for any other id."""
        request = self._request("GET", self._statement_path(statement_id))
        return statement_from(answer(await self._http.send(request)))

    async def statement_file(self, statement_id: int, fmt: Format = "csv") -> StatementFile:
        """One of your confirmed statements as a file: CSV (UTF-8 with BOM), XLSX or PDF."""
        return self._file_of(await self._http.send(self._file_request(statement_id, fmt)), statement_id, fmt)

    async def _pages(self, path: str, query: Query, key: str) -> AsyncIterator[Any]:
        page_query: Query | None = query
        while page_query is not None:
            response = await self._http.send(self._request("GET", path, page_query))
            items, page_query = self._page(response, key, query)
            for item in items:
                yield item
