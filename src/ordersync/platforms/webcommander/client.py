"""Thin client for WebCommander's external-app API: auth headers, envelopes, nothing else.

Pagination lives in ``extract.py`` and mapping in ``ordersync.mapping``; this module only knows how
to ask for one page or one order and how the answers are wrapped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from ordersync.config import WebCommanderShop
from ordersync.errors import BadResponseError
from ordersync.http import HttpPolicy, JsonResponse, build_client
from ordersync.rawpage import PageHeads, heads_decoder

API_PREFIX = "/external/app/access"
_PAGES = {keep: heads_decoder("orders", keep_orders=keep) for keep in (False, True)}


@dataclass(frozen=True)
class OrdersPage:
    offset: int
    total: int
    orders: list[dict[str, Any]]
    url: str
    body: bytes = b""
    count: int = 0
    """Orders on the page; with ``keep_orders=False`` the parsed ``orders`` are dropped (workers re-parse
    ``body``), so a window of pages in flight costs their bytes, not their Python objects."""
    ids: tuple[str | None, ...] = ()
    """Each order's id as text (None where a record has none): what a scan counts and checks."""
    asked: int = 0
    """The ``max`` this page was asked for; a host may return fewer (it caps) and still echo it."""


def _as_int(value: Any, what: str, url: str, shop: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise BadResponseError(f"{what} is {value!r}, not a number", url=url, status=200, shop=shop) from None


class WebCommanderClient:
    def __init__(
        self,
        shop: WebCommanderShop,
        policy: HttpPolicy,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        self.shop = shop
        self.policy = policy
        headers = {"uuid": shop.uuid.get_secret_value(), "accessToken": shop.access_token.get_secret_value()}
        self._http = build_client(
            shop.base_url, policy, headers=headers, transport=transport, max_connections=shop.concurrency + 2
        )

    async def __aenter__(self) -> WebCommanderClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def orders_page(self, offset: int, max_: int, *, keep_orders: bool = True) -> OrdersPage:
        """One page of ``GET orders``; ``max_=-1`` asks for everything from ``offset``. Only the
        envelope and the ids are read; ``keep_orders`` also parses the orders (tools and tests)."""
        path = f"{API_PREFIX}/orders"
        result = await self.policy.request_json(
            self._http, "GET", path, params={"max": max_, "offset": offset}, decode=_PAGES[keep_orders]
        )
        heads: PageHeads
        heads, orders = result.data
        url = str(result.response.request.url.copy_with(query=None))
        status = heads.fields.get("status")
        if status not in (None, "success"):
            raise BadResponseError(
                f"orders envelope says status={status!r}",
                url=url,
                status=result.response.status_code,
                shop=self.shop.name,
            )
        total = _as_int(heads.fields.get("total", heads.count), "'total'", url, self.shop.name)
        body = result.response.content
        return OrdersPage(
            offset=offset,
            total=total,
            orders=orders,
            url=f"{url}?max={max_}&offset={offset}",
            body=body,
            count=heads.count,
            ids=heads.ids,
            asked=max_,
        )

    async def post(
        self, endpoint: str, body: dict[str, Any], *, headers: dict[str, str] | None = None
    ) -> JsonResponse:
        """One POST to the external-app API, sent once: its writes are not idempotent, so only the
        outbox, which first looks for an earlier attempt's effect, may send one again."""
        return await self.policy.request_json(
            self._http, "POST", f"{API_PREFIX}/{endpoint}", json=body, headers=headers, retry=False
        )

    async def order(self, order_id: str | int) -> dict[str, Any]:
        result = await self.policy.request_json(
            self._http, "GET", f"{API_PREFIX}/order", params={"id": order_id}
        )
        body = result.data
        if not isinstance(body, dict) or not isinstance(body.get("order"), dict):
            raise BadResponseError(
                "order envelope has no 'order' object",
                url=str(result.response.request.url),
                status=result.response.status_code,
                shop=self.shop.name,
            )
        return body["order"]
