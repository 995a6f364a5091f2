"""WooCommerce clients: REST v3 (``wp-json/wc/v3``) and the legacy API v2 (``wc-api/v2``), one interface.

Both answer the same questions (a page of orders with the shop's totals, one order, an order's refunds
and notes, a count) and differ only in paths, parameter names, envelopes and total headers. Pagination
is planned in ``extract.py``; the clients never follow ``Link`` headers, which on real shops drop the
port (legacy) and echo OAuth parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar

import httpx

from ordersync.config import WooCommerceShop
from ordersync.errors import BadResponseError
from ordersync.http import HttpPolicy, JsonResponse, build_client, redact_url, tls_verify
from ordersync.platforms.woocommerce.auth import build_auth
from ordersync.rawpage import PageHeads, heads_decoder, heads_of


@dataclass(frozen=True)
class OrderFilters:
    """Which orders to list; times are aware and sent in the form each API version reads correctly."""

    statuses: tuple[str, ...] = ("any",)
    created_after: datetime | None = None
    created_before: datetime | None = None
    modified_after: datetime | None = None
    modified_before: datetime | None = None
    orderby: str | None = "date"
    order: str | None = "asc"
    include: tuple[int, ...] = ()
    """Only these order ids (REST v3 only)."""
    offset: int | None = None
    """Rows to skip; overrides the page number (WP_Query's ``offset``)."""


@dataclass(frozen=True)
class ListPage:
    """One page of orders. ``total``/``total_pages`` are None when the shop sent no total headers.

    ``orders`` holds the parsed orders only when the caller asked for them (``keep_orders``); a
    backfill reads just each order's id and refund mark (``ids``, ``refunded``) and hands the bytes on."""

    page: int
    per_page: int
    total: int | None
    total_pages: int | None
    count: int
    body: bytes
    orders: list[dict[str, Any]]
    url: str
    server_time: datetime | None = None
    """The shop's clock when it answered (``Date``), to the second; None without the header."""
    ids: tuple[str | None, ...] = ()
    """Each order's id as text (None for a record without one)."""
    refunded: tuple[bool, ...] = ()
    """Whether each order's summary lists a refund (v3 ``refunds``)."""

    def __post_init__(self) -> None:
        # Parsed orders (tests, the incremental sync, a page cut or filtered with `replace`) are the
        # truth: the marks are read from them, so they cannot go stale.
        if self.orders or not self.count:
            heads = heads_of(self.orders[: self.count])
            object.__setattr__(self, "ids", heads.ids)
            object.__setattr__(self, "refunded", heads.refunded)


def _gmt(value: datetime) -> str:
    """UTC without an offset: with ``dates_are_gmt=true`` a trailing ``Z`` shifts the window by the
    shop's UTC offset (observed on WooCommerce 11), so the offset must be left out."""
    if value.tzinfo is None:
        raise ValueError("filter times must be timezone-aware")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _zulu(value: datetime) -> str:
    """UTC with ``Z``: the legacy API decodes ``+`` to a space and ignores a broken date entirely."""
    if value.tzinfo is None:
        raise ValueError("filter times must be timezone-aware")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _http_date(raw: str | None) -> datetime | None:
    if not raw:
        return None
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)


def _header_int(headers: httpx.Headers, name: str) -> int | None:
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        return None


def public_url(url: httpx.URL) -> str:
    """The request URL without credentials or OAuth parameters: what the mirror may keep of it."""
    kept = [(k, v) for k, v in url.params.multi_items() if k not in ("consumer_key", "consumer_secret")]
    return redact_url(url.copy_with(params=kept))  # which drops the oauth_* parameters


_SHARD = 8
"""Connections per pool of detail requests (see ``WooCommerceClient.__init__``)."""


class WooCommerceClient:
    """What both API versions share: the HTTP client, auth, and envelope checks."""

    version: ClassVar[str]
    prefix: ClassVar[str]
    orders_key: ClassVar[str | None]
    total_header: ClassVar[str]
    pages_header: ClassVar[str]

    def __init__(
        self,
        shop: WooCommerceShop,
        policy: HttpPolicy,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        self.shop = shop
        self.policy = policy
        self._pages = {keep: heads_decoder(self.orders_key, keep_orders=keep) for keep in (False, True)}
        auth = build_auth(
            shop.auth_mode,
            shop.consumer_key.get_secret_value(),
            shop.consumer_secret.get_secret_value(),
            signature_method=shop.signature_method,
            legacy=self.version == "v2",
        )
        # Separate pools: httpcore checks every pooled connection (a poll and a getpeername each) on
        # each request and each release, so lists get a pool of their own, and the many small refund
        # and note requests go to shards of at most _SHARD connections, the least busy first: at 32 in
        # flight one pool spent more CPU checking connections than sending requests. One TLS context.
        verify = tls_verify(shop.verify_tls, policy.shop)
        self._http = build_client(
            shop.base_url,
            policy,
            transport=transport,
            max_connections=shop.concurrency + 1,
            auth=auth,
            verify=verify,
        )
        sizes = [_SHARD] * (shop.detail_concurrency // _SHARD)
        if shop.detail_concurrency % _SHARD:
            sizes.append(shop.detail_concurrency % _SHARD)
        self._details = [
            build_client(
                shop.base_url, policy, transport=transport, max_connections=size, auth=auth, verify=verify
            )
            for size in sizes
        ]
        self._busy = [0] * len(self._details)

    async def __aenter__(self) -> WooCommerceClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()
        for shard in self._details:
            await shard.aclose()

    def _bad(self, problem: str, result: JsonResponse) -> BadResponseError:
        return BadResponseError(
            problem,
            url=redact_url(result.response.request.url),
            status=result.response.status_code,
            shop=self.shop.name,
        )

    async def _get(
        self, path: str, params: dict[str, Any] | None = None, *, detail: bool = False
    ) -> JsonResponse:
        if not detail:
            return await self.policy.request_json(self._http, "GET", f"{self.prefix}{path}", params=params)
        shard = self._busy.index(min(self._busy))
        self._busy[shard] += 1
        try:
            return await self.policy.request_json(
                self._details[shard], "GET", f"{self.prefix}{path}", params=params
            )
        finally:
            self._busy[shard] -= 1

    async def send(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: dict[str, Any] | None = None,
        retry: bool = True,
    ) -> JsonResponse:
        """Any request under this version's prefix (writes included); ``retry=False`` sends once."""
        return await self.policy.request_json(
            self._http, method, f"{self.prefix}{path}", params=params, json=body, retry=retry
        )

    def _unwrap(self, result: JsonResponse, key: str | None, kind: type) -> Any:
        data = result.data
        if key is not None:
            if not isinstance(data, dict) or key not in data:
                raise self._bad(f"response has no {key!r} envelope", result)
            data = data[key]
        if not isinstance(data, kind):
            raise self._bad(f"expected a JSON {kind.__name__}, got {type(data).__name__}", result)
        return data

    def list_params(self, page: int | None, per_page: int | None, filters: OrderFilters) -> dict[str, Any]:
        """Query parameters for a list request; ``None`` leaves a parameter to the shop's default."""
        raise NotImplementedError

    async def orders_page(
        self,
        page: int | None,
        per_page: int | None,
        filters: OrderFilters = OrderFilters(),
        *,
        keep_orders: bool = True,
    ) -> ListPage:
        """One list page; without ``keep_orders`` only ids and refund marks are read from its bytes."""
        result = await self.policy.request_json(
            self._http,
            "GET",
            f"{self.prefix}/orders",
            params=self.list_params(page, per_page, filters),
            decode=self._pages[keep_orders],
        )
        heads: PageHeads
        heads, orders = result.data
        body = result.response.content
        return ListPage(
            page=page or 1,
            per_page=per_page or heads.count,
            total=_header_int(result.headers, self.total_header),
            total_pages=_header_int(result.headers, self.pages_header),
            count=heads.count,
            body=body,
            orders=orders if keep_orders else [],
            url=public_url(result.response.request.url),
            server_time=_http_date(result.headers.get("date")),
            ids=heads.ids,
            refunded=heads.refunded,
        )

    async def order(self, order_id: int | str) -> dict[str, Any]:
        result = await self._get(f"/orders/{order_id}")
        return self._unwrap(result, "order" if self.orders_key else None, dict)

    async def refunds(self, order_id: int | str) -> list[dict[str, Any]]:
        raise NotImplementedError

    async def notes(self, order_id: int | str) -> list[dict[str, Any]]:
        raise NotImplementedError

    async def count(self, filters: OrderFilters = OrderFilters()) -> int:
        raise NotImplementedError


class RestV3Client(WooCommerceClient):
    version = "v3"
    prefix = "/wp-json/wc/v3"
    orders_key = None
    total_header = "x-wp-total"
    pages_header = "x-wp-totalpages"

    def list_params(self, page: int | None, per_page: int | None, filters: OrderFilters) -> dict[str, Any]:
        params: dict[str, Any] = {"per_page": per_page, "page": page, "status": ",".join(filters.statuses)}
        if filters.orderby:
            params["orderby"] = filters.orderby
        if filters.order:
            params["order"] = filters.order
        if filters.include:
            params["include"] = ",".join(str(i) for i in filters.include)
        if filters.offset is not None:
            params["offset"] = filters.offset
        dated = False
        for name in ("created_after", "created_before", "modified_after", "modified_before"):
            value = getattr(filters, name)
            if value is not None:
                params[name.removeprefix("created_")] = _gmt(value)
                dated = True
        if dated:
            params["dates_are_gmt"] = "true"
        return {k: v for k, v in params.items() if v not in (None, "")}

    async def refunds(self, order_id: int | str) -> list[dict[str, Any]]:
        """All refunds of an order; the endpoint pages at 10 by default, so further pages are read."""
        result = await self._get(f"/orders/{order_id}/refunds", detail=True)
        refunds = list(self._unwrap(result, None, list))
        pages = _header_int(result.headers, self.pages_header) or 1
        for page in range(2, pages + 1):
            more = await self._get(f"/orders/{order_id}/refunds", {"page": page}, detail=True)
            refunds.extend(self._unwrap(more, None, list))
        return refunds

    async def notes(self, order_id: int | str) -> list[dict[str, Any]]:
        """Customer and private notes; the notes endpoint is not paginated."""
        result = await self._get(f"/orders/{order_id}/notes", {"type": "any"}, detail=True)
        return self._unwrap(result, None, list)

    async def count(self, filters: OrderFilters = OrderFilters()) -> int:
        result = await self._get("/orders", self.list_params(1, 1, filters))
        total = _header_int(result.headers, self.total_header)
        if total is None:
            raise self._bad(f"no {self.total_header} header on the order list", result)
        return total


class LegacyV2Client(WooCommerceClient):
    version = "v2"
    prefix = "/wc-api/v2"
    orders_key = "orders"
    total_header = "x-wc-total"
    pages_header = "x-wc-totalpages"

    def list_params(self, page: int | None, per_page: int | None, filters: OrderFilters) -> dict[str, Any]:
        if filters.include:
            raise ValueError("the legacy API cannot list orders by id; ask for each order")
        params: dict[str, Any] = {"filter[limit]": per_page, "page": page}
        statuses = [s for s in filters.statuses if s != "any"]
        if statuses:
            params["status"] = ",".join(statuses)
        names = {
            "created_after": "filter[created_at_min]",
            "created_before": "filter[created_at_max]",
            "modified_after": "filter[updated_at_min]",
            "modified_before": "filter[updated_at_max]",
        }
        for name, param in names.items():
            value = getattr(filters, name)
            if value is not None:
                params[param] = _zulu(value)
        if filters.offset is not None:
            params["filter[offset]"] = filters.offset
        if filters.orderby and filters.orderby != "date":
            # WP_Query knows the post id only as "ID".
            params["filter[orderby]"] = "ID" if filters.orderby == "id" else filters.orderby
            if filters.order:
                params["filter[order]"] = filters.order.upper()
        return {k: v for k, v in params.items() if v not in (None, "")}

    async def refunds(self, order_id: int | str) -> list[dict[str, Any]]:
        return self._unwrap(
            await self._get(f"/orders/{order_id}/refunds", detail=True), "order_refunds", list
        )

    async def notes(self, order_id: int | str) -> list[dict[str, Any]]:
        return self._unwrap(await self._get(f"/orders/{order_id}/notes", detail=True), "order_notes", list)

    async def count(self, filters: OrderFilters = OrderFilters()) -> int:
        params = {"status": ",".join(s for s in filters.statuses if s != "any")}
        result = await self._get("/orders/count", {k: v for k, v in params.items() if v})
        body = self._unwrap(result, None, dict)
        if not isinstance(body.get("count"), int):
            raise self._bad("count response has no integer 'count'", result)
        return body["count"]

    async def statuses(self) -> dict[str, str]:
        return self._unwrap(await self._get("/orders/statuses"), "order_statuses", dict)


def open_client(
    shop: WooCommerceShop, policy: HttpPolicy, *, transport: httpx.AsyncBaseTransport | None = None
) -> WooCommerceClient:
    """The client for the API version the config names."""
    cls = RestV3Client if shop.api_version == "v3" else LegacyV2Client
    return cls(shop, policy, transport=transport)
