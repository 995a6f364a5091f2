"""The sandbox WooCommerce shop as a Starlette app: REST v3 under ``/wp-json/wc/v3`` and the legacy
API v2 under ``/wc-api/v2``, with WooCommerce's status codes, error bodies, headers and quirks.

v3 errors are ``{"code","message","data":{"status":N}}``; v2 errors ``{"errors":[{"code","message"}]}``.
v3 lists send ``X-WP-Total``/``X-WP-TotalPages`` and one ``Link`` header echoing the query (OAuth
parameters included); a page past the end is ``200 []``. v2 lists send ``X-WC-Total``/``X-WC-TotalPages``
and one ``Link`` header per rel whose URLs drop the port and are not percent-encoded.
"""

from __future__ import annotations

import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, unquote_plus, urlencode, urlsplit

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ordersync.sandbox.faults import FaultConfig, FaultInjector
from ordersync.sandbox.woocommerce.auth import ApiKey, Authenticator, AuthFailure, Call
from ordersync.sandbox.woocommerce.catalog import BY_SKU, CUSTOM_STATUSES, STATUS_LABELS
from ordersync.sandbox.woocommerce.model import Order
from ordersync.sandbox.woocommerce.render import encode
from ordersync.sandbox.woocommerce.store import StoreError, WooCommerceStore

__all__ = ["DEFAULT_CONSUMER_KEY", "DEFAULT_CONSUMER_SECRET", "ApiKey", "create_app"]

DEFAULT_CONSUMER_KEY = "ck_sandbox_read_write_0000000000000000000000"
DEFAULT_CONSUMER_SECRET = "cs_sandbox_read_write_0000000000000000000000"
READ_ONLY_CONSUMER_KEY = "ck_sandbox_read_only_00000000000000000000000"
READ_ONLY_CONSUMER_SECRET = "cs_sandbox_read_only_00000000000000000000000"
V3 = "/wp-json/wc/v3"
V2 = "/wc-api/v2"
BATCH_LIMIT = 100
V3_STATUSES = ("any", "trash", "auto-draft", *STATUS_LABELS, *CUSTOM_STATUSES)
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
_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|z|[+-]\d{2}(:?\d{2})?)?$")
_CANNOT = {
    "GET": ("woocommerce_rest_cannot_view", "Sorry, you cannot list resources."),
    "GET1": ("woocommerce_rest_cannot_view", "Sorry, you cannot view this resource."),
    "POST": ("woocommerce_rest_cannot_create", "Sorry, you are not allowed to create resources."),
    "PUT": ("woocommerce_rest_cannot_edit", "Sorry, you are not allowed to edit this resource."),
    "DELETE": ("woocommerce_rest_cannot_delete", "Sorry, you are not allowed to delete this resource."),
    "BATCH": (
        "woocommerce_rest_cannot_batch",
        "Sorry, you are not allowed to batch manipulate this resource.",
    ),
}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, data: Any = None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.data = {"status": status} if data is None else data


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        encode(body), status_code=status, media_type="application/json; charset=UTF-8", headers=headers
    )


def _raw(body: bytes, status: int = 200, headers: Any = None) -> Response:
    return Response(body, status_code=status, media_type="application/json; charset=UTF-8", headers=headers)


def _v3_error(status: int, code: str, message: str, data: Any = None) -> Response:
    return _json(
        {"code": code, "message": message, "data": {"status": status} if data is None else data}, status
    )


def _v2_error(status: int, code: str, message: str) -> Response:
    return _json({"errors": [{"code": code, "message": message}]}, status)


def _invalid(params: dict[str, tuple[str, str]]) -> ApiError:
    """WordPress's ``rest_invalid_param``: one message per parameter and a details entry each."""
    return ApiError(
        400,
        "rest_invalid_param",
        f"Invalid parameter(s): {', '.join(params)}",
        {
            "status": 400,
            "params": {name: message for name, (_, message) in params.items()},
            "details": {
                name: {"code": code, "message": message, "data": None}
                for name, (code, message) in params.items()
            },
        },
    )


def _enum_message(name: str, values: tuple[str, ...]) -> str:
    return f"{name} is not one of {', '.join(values[:-1])}, and {values[-1]}."


async def _body(request: Request, legacy: bool = False) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        if legacy:
            raise ApiError(400, "woocommerce_api_invalid_json", "Invalid JSON body passed.") from None
        raise ApiError(
            400,
            "rest_invalid_json",
            "Invalid JSON body passed.",
            {"status": 400, "json_error_code": 4, "json_error_message": "Syntax error"},
        ) from None
    if not isinstance(body, dict):
        return {}
    return body


def _parse_date(value: str) -> datetime | None:
    if not _ISO.match(value.strip()):
        return None
    text = value.strip().replace("z", "Z")
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


@dataclass
class Ctx:
    request: Request
    store: WooCommerceStore
    key: ApiKey | None

    @property
    def base(self) -> str:
        url = self.request.url
        return f"{url.scheme}://{url.netloc}"


def create_app(
    store: WooCommerceStore,
    *,
    keys: list[ApiKey] | None = None,
    faults: FaultConfig | None = None,
) -> FaultInjector:
    """The shop behind its fault injector; ``app.app.state.store`` is its state."""
    keys = (
        keys
        if keys is not None
        else [
            ApiKey(DEFAULT_CONSUMER_KEY, DEFAULT_CONSUMER_SECRET, "read_write"),
            ApiKey(READ_ONLY_CONSUMER_KEY, READ_ONLY_CONSUMER_SECRET, "read"),
        ]
    )
    auth = Authenticator(keys, store.now)
    v3 = _V3(store)
    v2 = _V2(store)

    def endpoint(handler: Callable[[Ctx], Awaitable[Response]], *, legacy: bool, action: str | None = None):  # type: ignore[no-untyped-def]
        async def wrapped(request: Request) -> Response:
            call = Call(
                method=request.method,
                url=str(request.url),
                secure=request.url.scheme == "https",
                authorization=request.headers.get("authorization", ""),
                legacy=legacy,
            )
            try:
                response = await guarded(call, request)
            except (ApiError, StoreError) as exc:
                if legacy:
                    return _v2_error(exc.status, _legacy_code(exc.code), exc.message)
                response = _v3_error(exc.status, exc.code, exc.message, exc.data)
            if not legacy and "link" not in response.headers:
                url = request.url
                response.headers["Link"] = f'<{url.scheme}://{url.netloc}/wp-json/>; rel="https://api.w.org/"'
            return response

        async def guarded(call: Call, request: Request) -> Response:
            error_code = (
                "woocommerce_api_authentication_error" if legacy else "woocommerce_rest_authentication_error"
            )
            try:
                key = auth.identify(call)
            except AuthFailure as exc:
                raise ApiError(exc.status, error_code, exc.message) from None
            if key is None:
                code, message = _CANNOT[action or request.method]
                raise ApiError(401, code, message)
            if not key.can(request.method):
                kind = "read" if request.method == "GET" else "write"
                raise ApiError(401, error_code, f"The API key provided does not have {kind} permissions.")
            return await handler(Ctx(request, store, key))

        return wrapped

    def r3(path: str, handler: Any, methods: list[str], action: str | None = None) -> Route:
        return Route(V3 + path, endpoint(handler, legacy=False, action=action), methods=methods)

    def r2(path: str, handler: Any, methods: list[str]) -> Route:
        return Route(V2 + path, endpoint(handler, legacy=True), methods=methods)

    routes = [
        r3("/orders", v3.list_orders, ["GET"]),
        r3("/orders", v3.create_order, ["POST"]),
        r3("/orders/batch", v3.batch, ["POST", "PUT", "PATCH"], action="BATCH"),
        r3("/orders/{id:int}", v3.get_order, ["GET"], action="GET1"),
        r3("/orders/{id:int}", v3.update_order, ["PUT", "PATCH", "POST"], action="PUT"),
        r3("/orders/{id:int}", v3.delete_order, ["DELETE"]),
        r3("/orders/{id:int}/notes", v3.list_notes, ["GET"]),
        r3("/orders/{id:int}/notes", v3.create_note, ["POST"]),
        r3("/orders/{id:int}/notes/{note:int}", v3.get_note, ["GET"], action="GET1"),
        r3("/orders/{id:int}/notes/{note:int}", v3.delete_note, ["DELETE"]),
        r3("/orders/{id:int}/refunds", v3.list_refunds, ["GET"]),
        r3("/orders/{id:int}/refunds", v3.create_refund, ["POST"]),
        r3("/orders/{id:int}/refunds/{refund:int}", v3.get_refund, ["GET"], action="GET1"),
        r3("/orders/{id:int}/refunds/{refund:int}", v3.delete_refund, ["DELETE"]),
        r3("/refunds", v3.all_refunds, ["GET"]),
        r3("/products", v3.products, ["GET"]),
        r2("/orders", v2.list_orders, ["GET"]),
        r2("/orders", v2.create_order, ["POST"]),
        r2("/orders/count", v2.count, ["GET"]),
        r2("/orders/statuses", v2.statuses, ["GET"]),
        r2("/orders/{id:int}", v2.get_order, ["GET"]),
        r2("/orders/{id:int}", v2.update_order, ["PUT", "POST"]),
        r2("/orders/{id:int}", v2.delete_order, ["DELETE"]),
        r2("/orders/{id:int}/notes", v2.list_notes, ["GET"]),
        r2("/orders/{id:int}/notes", v2.create_note, ["POST"]),
        r2("/orders/{id:int}/notes/{note:int}", v2.get_note, ["GET"]),
        r2("/orders/{id:int}/notes/{note:int}", v2.update_note, ["PUT"]),
        r2("/orders/{id:int}/notes/{note:int}", v2.delete_note, ["DELETE"]),
        r2("/orders/{id:int}/refunds", v2.list_refunds, ["GET"]),
        r2("/orders/{id:int}/refunds", v2.create_refund, ["POST"]),
        r2("/orders/{id:int}/refunds/{refund:int}", v2.get_refund, ["GET"]),
        r2("/orders/{id:int}/refunds/{refund:int}", v2.delete_refund, ["DELETE"]),
    ]

    async def no_route(request: Request, exc: Exception) -> Response:
        if request.url.path.startswith(V2):
            return _v2_error(
                404, "woocommerce_api_no_route", "No route was found matching the URL and request method"
            )
        return _v3_error(404, "rest_no_route", "No route was found matching the URL and request method.")

    app = Starlette(routes=routes, exception_handlers={404: no_route, 405: no_route})
    app.state.store = store
    return FaultInjector(app, faults)


def _legacy_code(code: str) -> str:
    return code.replace("woocommerce_rest_shop_order_invalid_id", "woocommerce_api_no_order_found").replace(
        "woocommerce_rest_", "woocommerce_api_"
    )


# ---- wc/v3 ----------------------------------------------------------------------------------------
class _V3:
    def __init__(self, store: WooCommerceStore):
        self.store = store

    def _query(self, request: Request) -> dict[str, Any]:
        params = request.query_params
        errors: dict[str, tuple[str, str]] = {}
        query: dict[str, Any] = {}

        def integer(name: str, default: int, low: int, high: int | None) -> int:
            raw = params.get(name)
            if raw is None or raw == "":
                return default
            try:
                value = int(raw)
            except ValueError:
                errors[name] = ("rest_invalid_type", f"{name} is not of type integer.")
                return default
            if value < low or (high is not None and value > high):
                bound = (
                    f"between {low} (inclusive) and {high} (inclusive)"
                    if high
                    else f"greater than or equal to {low}"
                )
                errors[name] = ("rest_out_of_bounds", f"{name} must be {bound}")
            return value

        query["per_page"] = integer("per_page", 10, 1, 100)
        query["page"] = integer("page", 1, 1, None)
        statuses = [
            s for raw in params.getlist("status") + params.getlist("status[]") for s in raw.split(",") if s
        ]
        statuses += [v for k, v in params.multi_items() if k.startswith("status[") and k != "status[]"]
        for i, status in enumerate(statuses):
            if status not in _STATUS_ENUM:
                errors["status"] = ("rest_not_in_enum", _enum_message(f"status[{i}]", _STATUS_ENUM))
        query["statuses"] = statuses or ["any"]
        gmt = params.get("dates_are_gmt", "false").lower() in ("1", "true")
        for name in ("after", "before", "modified_after", "modified_before"):
            raw = params.get(name)
            if raw is None:
                continue
            parsed = _parse_date(raw)
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
            errors["orderby"] = ("rest_not_in_enum", _enum_message("orderby", ORDERBY))
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
        customer = params.get("customer")
        query["customer"] = int(customer) if customer and customer.isdigit() else None
        query["search"] = params.get("search") or None
        if errors:
            raise _invalid(errors)
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
        cache_key = ("v3", repr(sorted((k, str(v)) for k, v in q.items() if k not in ("page", "per_page"))))
        ids = self.store.listing(cache_key, lambda: self._select(q))
        total = len(ids)
        pages = math.ceil(total / q["per_page"]) if total else 0
        chunk = ids[(q["page"] - 1) * q["per_page"] : q["page"] * q["per_page"]]
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
        return _raw(body, headers=headers)

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
            return _raw(self.store.v3_bytes(order, ctx.base))

    async def create_order(self, ctx: Ctx) -> Response:
        order = self.store.create_order(await _body(ctx.request))
        return _json(self.store.renderer.v3_order(order, ctx.base), 201)

    async def update_order(self, ctx: Ctx) -> Response:
        order = self.store.update_order(ctx.request.path_params["id"], await _body(ctx.request))
        return _json(self.store.renderer.v3_order(order, ctx.base))

    async def delete_order(self, ctx: Ctx) -> Response:
        order_id = ctx.request.path_params["id"]
        if ctx.request.query_params.get("force", "").lower() in ("1", "true"):
            with self.store.lock:
                shown = self.store.renderer.v3_order(self.store.get(order_id), ctx.base)
                self.store.delete(order_id)
            return _json(shown)
        order = self.store.trash(order_id)
        return _json(self.store.renderer.v3_order(order, ctx.base))

    async def batch(self, ctx: Ctx) -> Response:
        body = await _body(ctx.request)
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
        return _json(out)

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
            return _json([self.store.renderer.v3_note(order, n, ctx.base) for n in notes])

    async def create_note(self, ctx: Ctx) -> Response:
        body = await _body(ctx.request)
        order_id = ctx.request.path_params["id"]
        note = self.store.add_note(order_id, body.get("note"), bool(body.get("customer_note")))
        location = {"Location": f"{ctx.base}{V3}/orders/{order_id}/notes/{note.id}"}
        return _json(self.store.renderer.v3_note(self.store.get(order_id), note, ctx.base), 201, location)

    def _note(self, ctx: Ctx) -> tuple[Order, Any]:
        order = self.store.get(ctx.request.path_params["id"])
        for note in order.notes:
            if note.id == ctx.request.path_params["note"]:
                return order, note
        raise ApiError(404, "woocommerce_rest_invalid_id", "Invalid resource ID.")

    async def get_note(self, ctx: Ctx) -> Response:
        order, note = self._note(ctx)
        return _json(self.store.renderer.v3_note(order, note, ctx.base))

    async def delete_note(self, ctx: Ctx) -> Response:
        if ctx.request.query_params.get("force", "").lower() not in ("1", "true"):
            raise ApiError(501, "woocommerce_rest_trash_not_supported", "Webhooks do not support trashing.")
        order, note = self._note(ctx)
        self.store.delete_note(order.id, note.id)
        return _json(self.store.renderer.v3_note(order, note, ctx.base))

    @staticmethod
    def _paging(request: Request) -> tuple[int, int]:
        """per_page (1..100) and page (>= 1) as WordPress validates them."""
        errors: dict[str, tuple[str, str]] = {}
        values = {}
        for name, default, high in (("per_page", 10, 100), ("page", 1, None)):
            raw = request.query_params.get(name)
            try:
                value = default if raw in (None, "") else int(raw)
            except ValueError:
                errors[name] = ("rest_invalid_type", f"{name} is not of type integer.")
                continue
            if value < 1 or (high is not None and value > high):
                bound = (
                    f"between 1 (inclusive) and {high} (inclusive)" if high else "greater than or equal to 1"
                )
                errors[name] = ("rest_out_of_bounds", f"{name} must be {bound}")
            values[name] = value
        if errors:
            raise _invalid(errors)
        return values["per_page"], values["page"]

    async def list_refunds(self, ctx: Ctx) -> Response:
        per_page, page = self._paging(ctx.request)
        with self.store.lock:
            order = self.store.get(ctx.request.path_params["id"])
            refunds = self.store.refunds_newest_first(order)
            chunk = refunds[(page - 1) * per_page : page * per_page]
            body = [self.store.renderer.v3_refund(order, r, ctx.base) for r in chunk]
        pages = math.ceil(len(refunds) / per_page) if refunds else 0
        return _json(body, headers={"X-WP-Total": str(len(refunds)), "X-WP-TotalPages": str(pages)})

    async def create_refund(self, ctx: Ctx) -> Response:
        order_id = ctx.request.path_params["id"]
        refund = self.store.create_refund(order_id, await _body(ctx.request))
        return _json(self.store.renderer.v3_refund(self.store.get(order_id), refund, ctx.base), 201)

    def _refund(self, ctx: Ctx) -> tuple[Order, Any]:
        order = self.store.get(ctx.request.path_params["id"])
        for refund in order.refunds:
            if refund.id == ctx.request.path_params["refund"]:
                return order, refund
        raise ApiError(404, "woocommerce_rest_invalid_id", "Invalid ID.")

    async def get_refund(self, ctx: Ctx) -> Response:
        order, refund = self._refund(ctx)
        return _json(self.store.renderer.v3_refund(order, refund, ctx.base))

    async def delete_refund(self, ctx: Ctx) -> Response:
        order, refund = self._refund(ctx)
        shown = self.store.renderer.v3_refund(order, refund, ctx.base)
        self.store.delete_refund(order.id, refund.id)
        return _json(shown)

    async def all_refunds(self, ctx: Ctx) -> Response:
        per_page, page = self._paging(ctx.request)
        with self.store.lock:
            pairs = self.store.all_refunds()
            chunk = pairs[(page - 1) * per_page : page * per_page]
            body = [self.store.renderer.v3_refund_listed(o, r, ctx.base) for o, r in chunk]
        pages = math.ceil(len(pairs) / per_page) if pairs else 0
        return _json(body, headers={"X-WP-Total": str(len(pairs)), "X-WP-TotalPages": str(pages)})

    async def products(self, ctx: Ctx) -> Response:
        sku = ctx.request.query_params.get("sku")
        found = [p for p in BY_SKU.values() if sku is None or p.sku == sku]
        body = [
            {
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
            for p in found
        ]
        return _json(body, headers={"X-WP-Total": str(len(body)), "X-WP-TotalPages": "1" if body else "0"})


# ---- legacy v2 ----------------------------------------------------------------------------------
def _legacy_date(raw: str) -> datetime:
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


class _V2:
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
        return self.store.renderer.v2_order(order, ctx.base, self.store.v2_customer(order))

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
                bounds[name] = (attr, op, _legacy_date(params[name]))

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
        except ValueError:
            raise ApiError(400, "woocommerce_api_invalid_parameter", "Invalid parameter") from None
        key = (
            "v2",
            tuple(
                sorted((k, v) for k, v in params.multi_items() if k != "page" and not k.startswith("oauth_"))
            ),
        )
        ids = self.store.listing(key, lambda: self._select(params))
        total = len(ids)
        if limit == -1:
            pages, chunk = (1 if total else 0), ids
        else:
            limit = max(limit, 1)
            pages = math.ceil(total / limit) if total else 0
            chunk = ids[(page - 1) * limit : page * limit]
        with self.store.lock:
            orders = [self._render(ctx, self.store.orders[i]) for i in chunk if i in self.store.orders]
        headers = [("x-wc-total", str(total)), ("x-wc-totalpages", str(pages))]
        headers += [("link", link) for link in self._links(ctx, page, pages)]
        response = _json({"orders": orders})
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
        return _json({"count": len(orders)})

    async def statuses(self, ctx: Ctx) -> Response:
        return _json({"order_statuses": {**STATUS_LABELS, **CUSTOM_STATUSES}})

    async def get_order(self, ctx: Ctx) -> Response:
        with self.store.lock:
            return _json({"order": self._render(ctx, self._order(ctx))})

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
        return out

    async def create_order(self, ctx: Ctx) -> Response:
        order = self.store.create_order(self._as_v3(await _body(ctx.request, legacy=True)))
        return _json({"order": self._render(ctx, order)}, 201)

    async def update_order(self, ctx: Ctx) -> Response:
        order = self._order(ctx)
        self.store.update_order(order.id, self._as_v3(await _body(ctx.request, legacy=True)))
        return _json({"order": self._render(ctx, order)})

    async def delete_order(self, ctx: Ctx) -> Response:
        order = self._order(ctx)
        if ctx.request.query_params.get("force", "").lower() in ("1", "true"):
            self.store.delete(order.id)
            return _json({"message": "Permanently deleted order"})
        self.store.trash(order.id)
        return _json({"message": "Deleted order"})

    async def list_notes(self, ctx: Ctx) -> Response:
        order = self._order(ctx)
        notes = self.store.notes_listed(order)
        return _json({"order_notes": [self.store.renderer.v2_note(n) for n in notes]})

    def _note(self, ctx: Ctx) -> tuple[Order, Any]:
        order = self._order(ctx)
        for note in order.notes:
            if note.id == ctx.request.path_params["note"]:
                return order, note
        raise ApiError(404, "woocommerce_api_invalid_order_note_id", "Invalid order note ID")

    async def get_note(self, ctx: Ctx) -> Response:
        _, note = self._note(ctx)
        return _json({"order_note": self.store.renderer.v2_note(note)})

    async def create_note(self, ctx: Ctx) -> Response:
        order = self._order(ctx)
        body = (await _body(ctx.request, legacy=True)).get("order_note")
        if not isinstance(body, dict) or not body.get("note"):
            raise ApiError(400, "woocommerce_api_missing_order_note_body", "Order note is required")
        note = self.store.add_note(order.id, str(body["note"]), bool(body.get("customer_note")))
        return _json({"order_note": self.store.renderer.v2_note(note)}, 201)

    async def update_note(self, ctx: Ctx) -> Response:
        _, note = self._note(ctx)
        body = (await _body(ctx.request, legacy=True)).get("order_note")
        if isinstance(body, dict) and body.get("note"):
            note.text = str(body["note"])
        return _json({"order_note": self.store.renderer.v2_note(note)})

    async def delete_note(self, ctx: Ctx) -> Response:
        order, note = self._note(ctx)
        self.store.delete_note(order.id, note.id)
        return _json({"message": "Permanently deleted order note"})

    async def list_refunds(self, ctx: Ctx) -> Response:
        order = self._order(ctx)
        refunds = self.store.refunds_newest_first(order)
        return _json({"order_refunds": [self.store.renderer.v2_refund(r) for r in refunds]})

    def _refund(self, ctx: Ctx) -> tuple[Order, Any]:
        order = self._order(ctx)
        for refund in order.refunds:
            if refund.id == ctx.request.path_params["refund"]:
                return order, refund
        raise ApiError(404, "woocommerce_api_invalid_order_refund_id", "Invalid order refund ID")

    async def get_refund(self, ctx: Ctx) -> Response:
        _, refund = self._refund(ctx)
        return _json({"order_refund": self.store.renderer.v2_refund(refund)})

    async def create_refund(self, ctx: Ctx) -> Response:
        order = self._order(ctx)
        body = (await _body(ctx.request, legacy=True)).get("order_refund")
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
        return _json({"order_refund": self.store.renderer.v2_refund(refund)}, 201)

    async def delete_refund(self, ctx: Ctx) -> Response:
        order, refund = self._refund(ctx)
        self.store.delete_refund(order.id, refund.id)
        return _json({"message": "Permanently deleted refund"})
