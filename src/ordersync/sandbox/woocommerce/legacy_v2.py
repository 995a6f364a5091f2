"""The sandbox's legacy API v2 (``/wc-api/v2``, the Legacy REST API plugin): envelopes, filters with
their quirks, ``X-WC-*`` totals and port-less ``Link`` headers.

Writes keep the plugin's ways: ``PUT orders/<id>`` with a status the shop does not know answers 200 and
makes the order ``pending`` (``WC_Order::set_status``); ``order_meta`` sets only visible keys (no
leading underscore) with scalar values, and ``filter[meta]=true`` shows only those; an order naming a
product that does not exist is refused whole."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, unquote_plus, urlsplit

from starlette.responses import Response

from ordersync.sandbox.woocommerce.catalog import BY_ID, BY_SKU, CUSTOM_STATUSES, STATUS_LABELS, Product
from ordersync.sandbox.woocommerce.model import Order
from ordersync.sandbox.woocommerce.responses import ApiError, Ctx, find_by_id, json_response, read_body
from ordersync.sandbox.woocommerce.store import ALL_STATUSES, StoreError, WooCommerceStore


def legacy_date(raw: str) -> datetime:
    """What the legacy API makes of ``filter[..._at_min]``: decoded a second time (``+`` turns into a
    space), any ``±hh:mm`` offset replaced by UTC, and a date it cannot read taken as the epoch."""
    text = unquote_plus(raw)
    text = re.sub(r"\.\d+", "", text)
    text = re.sub(r"[+-]\d+:+\d+$", "", text).strip()
    if text.endswith(("Z", "z")):
        text = text[:-1]
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return datetime(1970, 1, 1)
    return parsed.replace(tzinfo=None)


class LegacyV2Api:
    def __init__(self, store: WooCommerceStore):
        self.store = store

    def _order(self, ctx: Ctx) -> Order:
        order_id = ctx.request.path_params["id"]
        order = self.store.orders.get(order_id)
        if order is None:
            raise ApiError(
                404, "woocommerce_api_no_order_found", f"No order found with the ID equal to {order_id}"
            )
        return order

    def _render(self, ctx: Ctx, order: Order) -> dict[str, Any]:
        body = self.store.renderer.v2_order(order, ctx.base, self.store.v2_customer(order))
        if ctx.request.query_params.get("filter[meta]") == "true":
            # WC_API_Resource::maybe_add_meta: hidden (underscore) keys are left out.
            visible = {k: v for _, k, v in order.meta if not k.startswith("_")}
            if visible:
                body["order_meta"] = visible
        return body

    def _select(self, params: Any) -> list[int]:
        raw_status = params.get("status")
        statuses = set(raw_status.split(",")) if raw_status else None
        bounds = {}
        for name, attr, op in (
            ("filter[created_at_min]", "created", 1),
            ("filter[created_at_max]", "created", -1),
            ("filter[updated_at_min]", "modified", 1),
            ("filter[updated_at_max]", "modified", -1),
        ):
            if params.get(name) is not None:
                bounds[name] = (attr, op, legacy_date(params[name]))

        def keep(o: Order) -> bool:
            if statuses is None:
                if o.status == "trash":
                    return False
            elif o.status not in statuses:
                return False
            for attr, op, bound in bounds.values():
                value = getattr(o, attr).astimezone(UTC).replace(tzinfo=None)
                if (op == 1 and value < bound) or (op == -1 and value > bound):
                    return False
            return True

        orderby = (params.get("filter[orderby]") or "date").lower()
        descending = (params.get("filter[order]") or "DESC").upper() != "ASC"
        orders = [o for o in self.store.orders.values() if keep(o)]
        if orderby == "id":
            orders.sort(key=lambda o: o.id, reverse=descending)
        elif orderby == "modified":
            orders.sort(key=lambda o: o.modified, reverse=descending)
        else:
            # WP_Query sorts by post_date alone: orders of the same second come in no fixed order,
            # which is what makes date-ordered legacy pagination skip and repeat orders.
            orders.sort(key=lambda o: (o.created, (o.id * 2654435761) % 1000), reverse=descending)
        return [o.id for o in orders]

    async def list_orders(self, ctx: Ctx) -> Response:
        params = ctx.request.query_params
        try:
            limit = int(params.get("filter[limit]", 10))
            page = max(1, int(params.get("page", 1)))
            offset = int(params["filter[offset]"]) if params.get("filter[offset]") else None
        except ValueError:
            raise ApiError(400, "woocommerce_api_invalid_parameter", "Invalid parameter") from None
        key = (
            "v2",
            tuple(
                sorted(
                    (k, v)
                    for k, v in params.multi_items()
                    if k not in ("page", "filter[offset]") and not k.startswith("oauth_")
                )
            ),
        )
        ids = self.store.listing(key, lambda: self._select(params))
        total = len(ids)
        if limit == -1:
            pages, chunk = (1 if total else 0), ids
        else:
            limit = max(limit, 1)
            pages = math.ceil(total / limit) if total else 0
            start = offset if offset is not None else (page - 1) * limit  # WP_Query: offset wins
            chunk = ids[start : start + limit]
        with self.store.lock:
            orders = [self._render(ctx, self.store.orders[i]) for i in chunk if i in self.store.orders]
        headers = [("x-wc-total", str(total)), ("x-wc-totalpages", str(pages))]
        headers += [("link", link) for link in self._links(ctx, page, pages)]
        response = json_response({"orders": orders})
        for name, value in headers:
            response.headers.append(name, value)
        return response

    @staticmethod
    def _links(ctx: Ctx, page: int, pages: int) -> list[str]:
        """Separate headers per rel; the home URL has no port and the query is not percent-encoded."""
        url = ctx.request.url
        kept = [(k, v) for k, v in parse_qsl(url.query, keep_blank_values=True) if k != "page"]
        home = f"{url.scheme}://{urlsplit(str(url)).hostname}"

        def href(n: int) -> str:
            query = "&".join(f"{k}={v}" for k, v in [*kept, ("page", str(n))])
            return f"<{home}{url.path}?{query}>"

        links = []
        if page > 1:
            links += [f'{href(1)}; rel="first"', f'{href(page - 1)}; rel="prev"']
        if page < pages:
            links += [f'{href(page + 1)}; rel="next"', f'{href(pages)}; rel="last"']
        return links

    async def count(self, ctx: Ctx) -> Response:
        params = ctx.request.query_params
        status = params.get("status")
        with self.store.lock:
            orders = [o for o in self.store.orders.values() if o.status != "trash"]
            if status:
                orders = [o for o in orders if o.status in set(status.split(","))]
        return json_response({"count": len(orders)})

    async def statuses(self, ctx: Ctx) -> Response:
        return json_response({"order_statuses": {**STATUS_LABELS, **CUSTOM_STATUSES}})

    async def get_order(self, ctx: Ctx) -> Response:
        with self.store.lock:
            return json_response({"order": self._render(ctx, self._order(ctx))})

    @staticmethod
    def _as_v3(body: dict[str, Any]) -> dict[str, Any]:
        """The legacy input shape in the v3 names the store understands."""
        given = body.get("order") if isinstance(body.get("order"), dict) else {}
        out: dict[str, Any] = {
            k: v
            for k, v in given.items()
            if k
            in (
                "status",
                "customer_id",
                "line_items",
                "shipping_lines",
                "fee_lines",
                "coupon_lines",
                "currency",
            )
        }
        if "billing_address" in given:
            out["billing"] = given["billing_address"]
        if "shipping_address" in given:
            out["shipping"] = given["shipping_address"]
        if "note" in given:
            out["customer_note"] = given["note"]
        details = given.get("payment_details")
        if isinstance(details, dict):
            out["payment_method"] = details.get("method_id", "")
            out["payment_method_title"] = details.get("method_title", "")
            out["transaction_id"] = details.get("transaction_id", "")
            out["set_paid"] = bool(details.get("paid"))
        for line in out.get("fee_lines") or []:
            if isinstance(line, dict) and "title" in line:
                line["name"] = line["title"]
        meta = given.get("order_meta")
        if isinstance(meta, dict):
            out["meta_data"] = [
                {"key": k, "value": v}
                for k, v in meta.items()
                if isinstance(k, str) and not k.startswith("_") and isinstance(v, str | int | float | bool)
            ]
        return out

    @staticmethod
    def _check_products(body: dict[str, Any]) -> None:
        """``set_line_item`` refuses a line without a valid product, and the order is not created."""
        for item in body.get("line_items") or []:
            if not isinstance(item, dict) or ("product_id" not in item and "sku" not in item):
                raise ApiError(400, "woocommerce_api_invalid_product_id", "Product ID or SKU is required")
            if item.get("sku"):
                product = BY_SKU.get(str(item["sku"]))
            else:
                product = BY_ID.get(int(item["product_id"])) if str(item["product_id"]).isdigit() else None
            if product is None:
                raise ApiError(400, "woocommerce_invalid_product", "Product is invalid.")

    async def create_order(self, ctx: Ctx) -> Response:
        body = self._as_v3(await read_body(ctx.request, legacy=True))
        self._check_products(body)
        order = self.store.create_order(body)
        return json_response({"order": self._render(ctx, order)}, 201)

    async def update_order(self, ctx: Ctx) -> Response:
        order = self._order(ctx)
        body = self._as_v3(await read_body(ctx.request, legacy=True))
        if "status" in body and body["status"] not in ALL_STATUSES:
            body["status"] = "pending"  # WC_Order::set_status, without a word to the caller
        self.store.update_order(order.id, body)
        return json_response({"order": self._render(ctx, order)})

    async def products(self, ctx: Ctx) -> Response:
        """``GET products`` with ``filter[sku]``: the SKU query covers variations too."""
        sku = ctx.request.query_params.get("filter[sku]")
        found = [p for p in BY_SKU.values() if not sku or p.sku == sku]
        headers = {"X-WC-Total": str(len(found)), "X-WC-TotalPages": "1" if found else "0"}
        return json_response({"products": [_v2_product(p) for p in found]}, headers=headers)

    async def product(self, ctx: Ctx) -> Response:
        wanted = int(ctx.request.path_params["id"])
        for product in BY_SKU.values():
            if product.id == wanted:
                return json_response({"product": _v2_product(product)})
        raise StoreError(404, "woocommerce_api_invalid_product_id", "Invalid product ID")

    async def delete_order(self, ctx: Ctx) -> Response:
        order = self._order(ctx)
        if ctx.request.query_params.get("force", "").lower() in ("1", "true"):
            self.store.delete(order.id)
            return json_response({"message": "Permanently deleted order"})
        self.store.trash(order.id)
        return json_response({"message": "Deleted order"})

    async def list_notes(self, ctx: Ctx) -> Response:
        order = self._order(ctx)
        notes = self.store.notes_listed(order)
        return json_response({"order_notes": [self.store.renderer.v2_note(n) for n in notes]})

    def _note(self, ctx: Ctx) -> tuple[Order, Any]:
        order = self._order(ctx)
        missing = ApiError(404, "woocommerce_api_invalid_order_note_id", "Invalid order note ID")
        return order, find_by_id(order.notes, ctx.request.path_params["note"], missing)

    async def get_note(self, ctx: Ctx) -> Response:
        _, note = self._note(ctx)
        return json_response({"order_note": self.store.renderer.v2_note(note)})

    async def create_note(self, ctx: Ctx) -> Response:
        order = self._order(ctx)
        body = (await read_body(ctx.request, legacy=True)).get("order_note")
        if not isinstance(body, dict) or not body.get("note"):
            raise ApiError(400, "woocommerce_api_missing_order_note_body", "Order note is required")
        note = self.store.add_note(order.id, str(body["note"]), bool(body.get("customer_note")))
        return json_response({"order_note": self.store.renderer.v2_note(note)}, 201)

    async def update_note(self, ctx: Ctx) -> Response:
        _, note = self._note(ctx)
        body = (await read_body(ctx.request, legacy=True)).get("order_note")
        if isinstance(body, dict) and body.get("note"):
            note.text = str(body["note"])
        return json_response({"order_note": self.store.renderer.v2_note(note)})

    async def delete_note(self, ctx: Ctx) -> Response:
        order, note = self._note(ctx)
        self.store.delete_note(order.id, note.id)
        return json_response({"message": "Permanently deleted order note"})

    async def list_refunds(self, ctx: Ctx) -> Response:
        order = self._order(ctx)
        refunds = self.store.refunds_newest_first(order)
        return json_response({"order_refunds": [self.store.renderer.v2_refund(r) for r in refunds]})

    def _refund(self, ctx: Ctx) -> tuple[Order, Any]:
        order = self._order(ctx)
        missing = ApiError(404, "woocommerce_api_invalid_order_refund_id", "Invalid order refund ID")
        return order, find_by_id(order.refunds, ctx.request.path_params["refund"], missing)

    async def get_refund(self, ctx: Ctx) -> Response:
        _, refund = self._refund(ctx)
        return json_response({"order_refund": self.store.renderer.v2_refund(refund)})

    async def create_refund(self, ctx: Ctx) -> Response:
        order = self._order(ctx)
        body = (await read_body(ctx.request, legacy=True)).get("order_refund")
        if not isinstance(body, dict):
            raise ApiError(
                400,
                "woocommerce_api_missing_order_refund_data",
                "No order_refund data specified to create order refund",
            )
        try:
            refund = self.store.create_refund(order.id, body)
        except StoreError as exc:
            raise ApiError(500, "woocommerce_api_cannot_create_order_refund", exc.message) from None
        return json_response({"order_refund": self.store.renderer.v2_refund(refund)}, 201)

    async def delete_refund(self, ctx: Ctx) -> Response:
        order, refund = self._refund(ctx)
        self.store.delete_refund(order.id, refund.id)
        return json_response({"message": "Permanently deleted refund"})


def _v2_product(product: Product) -> dict[str, Any]:
    return {
        "title": product.name,
        "id": product.id,
        "type": "variation" if product.parent_id else "simple",
        "status": "publish",
        "virtual": product.virtual,
        "sku": product.sku,
        "price": f"{product.price:.2f}",
        "regular_price": f"{product.price:.2f}",
        "tax_class": product.tax_class,
        "parent_id": product.parent_id,
        "variations": [],
        "parent": [],
    }


def legacy_error_code(code: str) -> str:
    return code.replace("woocommerce_rest_shop_order_invalid_id", "woocommerce_api_no_order_found").replace(
        "woocommerce_rest_", "woocommerce_api_"
    )


# ---- wc/v3 ----------------------------------------------------------------------------------------
