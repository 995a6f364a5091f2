"""The sandbox's REST API v3 (``/wp-json/wc/v3``): lists with WordPress's parameter validation and
headers, orders, notes, refunds, batch, products."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.requests import Request
from starlette.responses import Response

from ordersync.sandbox.woocommerce.catalog import BY_SKU, CUSTOM_STATUSES
from ordersync.sandbox.woocommerce.model import Order
from ordersync.sandbox.woocommerce.responses import (
    V3,
    ApiError,
    Ctx,
    enum_message,
    find_by_id,
    invalid_params,
    json_response,
    parse_date,
    raw_response,
    read_body,
)
from ordersync.sandbox.woocommerce.store import StoreError, WooCommerceStore

BATCH_LIMIT = 100
_STATUS_ENUM = (
    "any",
    "trash",
    "auto-draft",
    "pending",
    "processing",
    "on-hold",
    "completed",
    "cancelled",
    "refunded",
    "failed",
    "checkout-draft",
    *CUSTOM_STATUSES,
)
ORDERBY = ("date", "id", "include", "title", "slug", "modified")
ORDER_STATUSES = ("auto-draft", *(s for s in _STATUS_ENUM if s not in ("any", "auto-draft")))
"""What ``status`` may be set to: the schema's enum (the registered statuses and ``trash``)."""


def _paging(request: Request, errors: dict[str, tuple[str, str]]) -> tuple[int, int]:
    """per_page (1..100, default 10) and page (>= 1) as WordPress validates them; problems go into
    ``errors`` so one 400 names every bad parameter."""
    values = []
    for name, default, high in (("per_page", 10, 100), ("page", 1, None)):
        raw = request.query_params.get(name)
        if raw is None or raw == "":
            values.append(default)
            continue
        try:
            value = int(raw)
        except ValueError:
            errors[name] = ("rest_invalid_type", f"{name} is not of type integer.")
            values.append(default)
            continue
        if value < 1 or (high is not None and value > high):
            bound = f"between 1 (inclusive) and {high} (inclusive)" if high else "greater than or equal to 1"
            errors[name] = ("rest_out_of_bounds", f"{name} must be {bound}")
        values.append(value)
    return values[0], values[1]


def _valid_paging(request: Request) -> tuple[int, int]:
    errors: dict[str, tuple[str, str]] = {}
    paging = _paging(request, errors)
    if errors:
        raise invalid_params(errors)
    return paging


class RestV3Api:
    def __init__(self, store: WooCommerceStore):
        self.store = store

    def _query(self, request: Request) -> dict[str, Any]:
        params = request.query_params
        errors: dict[str, tuple[str, str]] = {}
        query: dict[str, Any] = {}

        query["per_page"], query["page"] = _paging(request, errors)
        statuses = [
            s for raw in params.getlist("status") + params.getlist("status[]") for s in raw.split(",") if s
        ]
        statuses += [v for k, v in params.multi_items() if k.startswith("status[") and k != "status[]"]
        for i, status in enumerate(statuses):
            if status not in _STATUS_ENUM:
                errors["status"] = ("rest_not_in_enum", enum_message(f"status[{i}]", _STATUS_ENUM))
        query["statuses"] = statuses or ["any"]
        gmt = params.get("dates_are_gmt", "false").lower() in ("1", "true")
        for name in ("after", "before", "modified_after", "modified_before"):
            raw = params.get(name)
            if raw is None:
                continue
            parsed = parse_date(raw)
            if parsed is None:
                errors[name] = ("rest_invalid_date", "Invalid date.")
                continue
            if parsed.tzinfo is not None:
                # WordPress turns an explicit offset into the site's local time, then compares that
                # with the GMT column when dates_are_gmt is set: the window shifts by the UTC offset.
                parsed = parsed.astimezone(self.store.renderer.zone).replace(tzinfo=None)
            query[name] = parsed
        query["gmt"] = gmt
        orderby = params.get("orderby", "date")
        if orderby not in ORDERBY:
            errors["orderby"] = ("rest_not_in_enum", enum_message("orderby", ORDERBY))
        order = params.get("order", "desc").lower()
        if order not in ("asc", "desc"):
            errors["order"] = ("rest_not_in_enum", "order is not one of asc and desc.")
        query["orderby"], query["order"] = orderby, order
        for name in ("include", "exclude"):
            values = [
                v for raw in params.getlist(name) + params.getlist(f"{name}[]") for v in raw.split(",") if v
            ]
            try:
                query[name] = [int(v) for v in values]
            except ValueError:
                errors[name] = ("rest_invalid_type", f"{name}[0] is not of type integer.")
        offset = params.get("offset")
        query["offset"] = None
        if offset not in (None, ""):
            if not offset.isdigit():
                errors["offset"] = ("rest_invalid_type", "offset is not of type integer.")
            else:
                query["offset"] = int(offset)  # WP_Query: an offset overrides the page
        customer = params.get("customer")
        query["customer"] = int(customer) if customer and customer.isdigit() else None
        query["search"] = params.get("search") or None
        if errors:
            raise invalid_params(errors)
        return query

    def _select(self, q: dict[str, Any]) -> list[int]:
        zone = self.store.renderer.zone

        def column(when: datetime) -> datetime:
            return (when.astimezone(UTC) if q["gmt"] else when.astimezone(zone)).replace(tzinfo=None)

        statuses = set(q["statuses"])
        include, exclude = set(q["include"]), set(q["exclude"])

        def keep(o: Order) -> bool:
            if "any" in statuses:
                if o.status == "trash" and "trash" not in statuses:
                    return False
            elif o.status not in statuses:
                return False
            if (include and o.id not in include) or o.id in exclude:
                return False
            if q["customer"] is not None and o.customer_id != q["customer"]:
                return False
            if q["search"] and q["search"].lower() not in " ".join([*o.billing.values(), str(o.id)]).lower():
                return False
            for name, attr, op in (
                ("after", "created", 1),
                ("before", "created", -1),
                ("modified_after", "modified", 1),
                ("modified_before", "modified", -1),
            ):
                bound = q.get(name)
                if bound is not None:
                    value = column(getattr(o, attr))
                    if (op == 1 and not value > bound) or (op == -1 and not value < bound):
                        return False
            return True

        orders = [o for o in self.store.orders.values() if keep(o)]
        reverse = q["order"] == "desc"
        if q["orderby"] == "modified":
            orders.sort(key=lambda o: (o.modified, o.id), reverse=reverse)
        elif q["orderby"] == "include" and q["include"]:
            rank = {oid: i for i, oid in enumerate(q["include"])}
            orders.sort(key=lambda o: rank.get(o.id, 0))
        elif q["orderby"] in ("id", "title", "slug"):
            orders.sort(key=lambda o: o.id, reverse=reverse)
        else:
            orders.sort(key=lambda o: (o.created, o.id), reverse=reverse)
        return [o.id for o in orders]

    async def list_orders(self, ctx: Ctx) -> Response:
        q = self._query(ctx.request)
        cache_key = (
            "v3",
            repr(sorted((k, str(v)) for k, v in q.items() if k not in ("page", "per_page", "offset"))),
        )
        ids = self.store.listing(cache_key, lambda: self._select(q))
        total = len(ids)
        pages = math.ceil(total / q["per_page"]) if total else 0
        start = q["offset"] if q["offset"] is not None else (q["page"] - 1) * q["per_page"]
        chunk = ids[start : start + q["per_page"]]
        with self.store.lock:
            body = (
                b"["
                + b",".join(
                    self.store.v3_bytes(self.store.orders[i], ctx.base)
                    for i in chunk
                    if i in self.store.orders
                )
                + b"]"
            )
        headers = {"X-WP-Total": str(total), "X-WP-TotalPages": str(pages)}
        link = self._link(ctx, q["page"], pages)
        if link:
            headers["Link"] = link
        return raw_response(body, headers=headers)

    @staticmethod
    def _link(ctx: Ctx, page: int, pages: int) -> str:
        """One header, rels comma-separated; the query echoed back with WordPress's additions."""
        url = ctx.request.url
        kept = [
            (k, v) for k, v in parse_qsl(url.query, keep_blank_values=True) if k not in ("page", "status")
        ]
        statuses = [s for k, v in parse_qsl(url.query) if k == "status" for s in v.split(",")] or ["any"]
        links = []

        def href(n: int) -> str:
            query = [("per_page", v) for k, v in kept if k == "per_page"][:1]
            query += [("page", str(n))] + [(k, v) for k, v in kept if k != "per_page"]
            query += [(f"status[{i}]", s) for i, s in enumerate(statuses)]
            if page <= pages:  # the recorded past-the-end page links back without WordPress's defaults
                query += [("dp", "2"), ("context", "view")]
            return f"<{url.scheme}://{url.netloc}{url.path}?{urlencode(query)}>"

        if page > 1 and pages:
            links.append(f'{href(min(page - 1, pages))}; rel="prev"')
        if page < pages:
            links.append(f'{href(page + 1)}; rel="next"')
        return ", ".join(links)

    async def get_order(self, ctx: Ctx) -> Response:
        with self.store.lock:
            order = self.store.get(ctx.request.path_params["id"])
            return raw_response(self.store.v3_bytes(order, ctx.base))

    async def create_order(self, ctx: Ctx) -> Response:
        order = self.store.create_order(await read_body(ctx.request))
        return json_response(self.store.renderer.v3_order(order, ctx.base), 201)

    async def update_order(self, ctx: Ctx) -> Response:
        body = await read_body(ctx.request)
        if "status" in body and body["status"] not in ORDER_STATUSES:
            # WordPress checks the schema's enum before WooCommerce sees the body (real v3 refuses;
            # only the legacy API lets an unknown status through, as pending).
            raise invalid_params({"status": ("rest_not_in_enum", enum_message("status", ORDER_STATUSES))})
        order = self.store.update_order(ctx.request.path_params["id"], body)
        return json_response(self.store.renderer.v3_order(order, ctx.base))

    async def send_order_details(self, ctx: Ctx) -> Response:
        body = await read_body(ctx.request)
        email = body.get("email")
        message = self.store.send_order_details(
            ctx.request.path_params["id"],
            str(email) if email else None,
            body.get("force_email_update") in (True, "true", "1", 1),
        )
        return json_response({"message": message})

    async def delete_order(self, ctx: Ctx) -> Response:
        order_id = ctx.request.path_params["id"]
        if ctx.request.query_params.get("force", "").lower() in ("1", "true"):
            with self.store.lock:
                shown = self.store.renderer.v3_order(self.store.get(order_id), ctx.base)
                self.store.delete(order_id)
            return json_response(shown)
        order = self.store.trash(order_id)
        return json_response(self.store.renderer.v3_order(order, ctx.base))

    async def batch(self, ctx: Ctx) -> Response:
        body = await read_body(ctx.request)
        groups = {k: body.get(k) or [] for k in ("create", "update", "delete")}
        if sum(len(v) for v in groups.values() if isinstance(v, list)) > BATCH_LIMIT:
            raise ApiError(
                413,
                "woocommerce_rest_request_entity_too_large",
                f"Unable to accept more than {BATCH_LIMIT} items for this request.",
            )
        out: dict[str, list[Any]] = {}
        for item in groups["create"]:
            out.setdefault("create", []).append(self._item(lambda i=item: self.store.create_order(i), ctx))
        for item in groups["update"]:
            oid = item.get("id") if isinstance(item, dict) else None
            out.setdefault("update", []).append(
                self._item(lambda i=item, o=oid: self.store.update_order(o, i), ctx, oid)
            )
        for oid in groups["delete"]:
            out.setdefault("delete", []).append(self._item(lambda o=oid: self.store.trash(o), ctx, oid))
        return json_response(out)

    def _item(self, action: Callable[[], Order], ctx: Ctx, oid: Any = 0) -> dict[str, Any]:
        try:
            return self.store.renderer.v3_order(action(), ctx.base)
        except StoreError as exc:
            return {"id": oid or 0, "error": {"code": exc.code, "message": exc.message, "data": exc.data}}

    async def list_notes(self, ctx: Ctx) -> Response:
        kind = ctx.request.query_params.get("type", "any")
        with self.store.lock:
            order = self.store.get(ctx.request.path_params["id"])
            notes = self.store.notes_listed(order, kind)
            return json_response([self.store.renderer.v3_note(order, n, ctx.base) for n in notes])

    async def create_note(self, ctx: Ctx) -> Response:
        body = await read_body(ctx.request)
        order_id = ctx.request.path_params["id"]
        note = self.store.add_note(order_id, body.get("note"), bool(body.get("customer_note")))
        location = {"Location": f"{ctx.base}{V3}/orders/{order_id}/notes/{note.id}"}
        return json_response(
            self.store.renderer.v3_note(self.store.get(order_id), note, ctx.base), 201, location
        )

    def _note(self, ctx: Ctx) -> tuple[Order, Any]:
        order = self.store.get(ctx.request.path_params["id"])
        missing = ApiError(404, "woocommerce_rest_invalid_id", "Invalid resource ID.")
        return order, find_by_id(order.notes, ctx.request.path_params["note"], missing)

    async def get_note(self, ctx: Ctx) -> Response:
        order, note = self._note(ctx)
        return json_response(self.store.renderer.v3_note(order, note, ctx.base))

    async def delete_note(self, ctx: Ctx) -> Response:
        if ctx.request.query_params.get("force", "").lower() not in ("1", "true"):
            raise ApiError(501, "woocommerce_rest_trash_not_supported", "Webhooks do not support trashing.")
        order, note = self._note(ctx)
        self.store.delete_note(order.id, note.id)
        return json_response(self.store.renderer.v3_note(order, note, ctx.base))

    async def list_refunds(self, ctx: Ctx) -> Response:
        per_page, page = _valid_paging(ctx.request)
        with self.store.lock:
            order = self.store.get(ctx.request.path_params["id"])
            refunds = self.store.refunds_newest_first(order)
            chunk = refunds[(page - 1) * per_page : page * per_page]
            body = [self.store.renderer.v3_refund(order, r, ctx.base) for r in chunk]
        pages = math.ceil(len(refunds) / per_page) if refunds else 0
        return json_response(body, headers={"X-WP-Total": str(len(refunds)), "X-WP-TotalPages": str(pages)})

    async def create_refund(self, ctx: Ctx) -> Response:
        order_id = ctx.request.path_params["id"]
        refund = self.store.create_refund(order_id, await read_body(ctx.request))
        return json_response(self.store.renderer.v3_refund(self.store.get(order_id), refund, ctx.base), 201)

    def _refund(self, ctx: Ctx) -> tuple[Order, Any]:
        order = self.store.get(ctx.request.path_params["id"])
        missing = ApiError(404, "woocommerce_rest_invalid_id", "Invalid ID.")
        return order, find_by_id(order.refunds, ctx.request.path_params["refund"], missing)

    async def get_refund(self, ctx: Ctx) -> Response:
        order, refund = self._refund(ctx)
        return json_response(self.store.renderer.v3_refund(order, refund, ctx.base))

    async def delete_refund(self, ctx: Ctx) -> Response:
        order, refund = self._refund(ctx)
        shown = self.store.renderer.v3_refund(order, refund, ctx.base)
        self.store.delete_refund(order.id, refund.id)
        return json_response(shown)

    async def all_refunds(self, ctx: Ctx) -> Response:
        per_page, page = _valid_paging(ctx.request)
        with self.store.lock:
            pairs = self.store.all_refunds()
            chunk = pairs[(page - 1) * per_page : page * per_page]
            body = [self.store.renderer.v3_refund_listed(o, r, ctx.base) for o, r in chunk]
        pages = math.ceil(len(pairs) / per_page) if pairs else 0
        return json_response(body, headers={"X-WP-Total": str(len(pairs)), "X-WP-TotalPages": str(pages)})

    async def products(self, ctx: Ctx) -> Response:
        sku = ctx.request.query_params.get("sku")
        found = [p for p in BY_SKU.values() if sku is None or p.sku == sku]
        body = [_v3_product(p) for p in found]
        return json_response(
            body, headers={"X-WP-Total": str(len(body)), "X-WP-TotalPages": "1" if body else "0"}
        )

    async def product(self, ctx: Ctx) -> Response:
        """``GET products/<id>``: a product, a variable one included, not a variation (those live
        under their parent)."""
        wanted = int(ctx.request.path_params["id"])
        for product in BY_SKU.values():
            if product.id == wanted and not product.parent_id:
                return json_response(_v3_product(product))
        variations = [p for p in BY_SKU.values() if p.parent_id == wanted]
        if variations:
            parent = {**_v3_product(variations[0]), "id": wanted, "type": "variable", "sku": ""}
            parent |= {"name": variations[0].parent_name, "parent_id": 0}
            return json_response({**parent, "variations": [v.id for v in variations]})
        raise StoreError(404, "woocommerce_rest_product_invalid_id", "Invalid ID.")


def _v3_product(p: Any) -> dict[str, Any]:
    return {
        "id": p.id,
        "name": p.name,
        "type": "variation" if p.parent_id else "simple",
        "status": "publish",
        "sku": p.sku,
        "price": f"{p.price:.2f}",
        "regular_price": f"{p.price:.2f}",
        "tax_status": "taxable",
        "tax_class": p.tax_class,
        "virtual": p.virtual,
        "parent_id": p.parent_id,
    }


# ---- legacy v2 ----------------------------------------------------------------------------------
