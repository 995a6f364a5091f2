"""The sandbox WooCommerce shop as a Starlette app: REST v3 under ``/wp-json/wc/v3`` and the legacy
API v2 under ``/wc-api/v2``, with WooCommerce's status codes, error bodies, headers and quirks.

v3 errors are ``{"code","message","data":{"status":N}}``; v2 errors ``{"errors":[{"code","message"}]}``.
v3 lists send ``X-WP-Total``/``X-WP-TotalPages`` and one ``Link`` header echoing the query (OAuth
parameters included); a page past the end is ``200 []``. v2 lists send ``X-WC-Total``/``X-WC-TotalPages``
and one ``Link`` header per rel whose URLs drop the port and are not percent-encoded.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ordersync.sandbox.faults import FaultConfig, FaultInjector
from ordersync.sandbox.http_date import DateHeader
from ordersync.sandbox.woocommerce.auth import ApiKey, Authenticator, AuthFailure, Call
from ordersync.sandbox.woocommerce.legacy_v2 import LegacyV2Api, legacy_error_code
from ordersync.sandbox.woocommerce.responses import (
    V2,
    V3,
    ApiError,
    Ctx,
    json_response,
    read_body,
    v2_error,
    v3_error,
)
from ordersync.sandbox.woocommerce.rest_v3 import RestV3Api
from ordersync.sandbox.woocommerce.store import StoreError, WooCommerceStore
from ordersync.sandbox.woocommerce.webhooks import Webhook, WebhookFaults, WebhookSender

__all__ = ["DEFAULT_CONSUMER_KEY", "DEFAULT_CONSUMER_SECRET", "ApiKey", "create_app"]

DEFAULT_CONSUMER_KEY = "ck_sandbox_read_write_0000000000000000000000"
DEFAULT_CONSUMER_SECRET = "cs_sandbox_read_write_0000000000000000000000"
READ_ONLY_CONSUMER_KEY = "ck_sandbox_read_only_00000000000000000000000"
READ_ONLY_CONSUMER_SECRET = "cs_sandbox_read_only_00000000000000000000000"
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


def _webhook_api(sender: WebhookSender) -> dict[str, Callable[[Ctx], Awaitable[Response]]]:
    """REST v3 ``/webhooks``: list, create (pinging the URL), read, pause or activate, delete."""

    def find(ctx: Ctx) -> Webhook:
        webhook = sender.webhooks.get(int(ctx.request.path_params["id"]))
        if webhook is None:
            raise ApiError(404, "woocommerce_rest_webhook_invalid_id", "Invalid ID.")
        return webhook

    async def listing(ctx: Ctx) -> Response:
        return json_response([w.to_json() for w in sender.webhooks.values()])

    async def create(ctx: Ctx) -> Response:
        try:
            webhook = sender.create(await read_body(ctx.request))
        except ValueError as exc:
            raise ApiError(400, "rest_invalid_param", f"Invalid parameter(s): {exc}") from None
        return json_response(webhook.to_json(), 201)

    async def one(ctx: Ctx) -> Response:
        return json_response(find(ctx).to_json())

    async def update(ctx: Ctx) -> Response:
        webhook = find(ctx)
        return json_response(sender.update(webhook.id, await read_body(ctx.request)).to_json())

    async def delete(ctx: Ctx) -> Response:
        webhook = find(ctx)
        if ctx.request.query_params.get("force") not in ("true", "1"):
            raise ApiError(501, "woocommerce_rest_trash_not_supported", "Webhooks do not support trashing.")
        return json_response(sender.delete(webhook.id).to_json())

    return {"list": listing, "create": create, "one": one, "update": update, "delete": delete}


def create_app(
    store: WooCommerceStore,
    *,
    keys: list[ApiKey] | None = None,
    faults: FaultConfig | None = None,
    webhook_faults: WebhookFaults | None = None,
) -> FaultInjector:
    """The shop behind its fault injector; ``app.app.state.store`` is its state and
    ``app.app.state.webhooks`` its webhooks and their sender."""
    keys = (
        keys
        if keys is not None
        else [
            ApiKey(DEFAULT_CONSUMER_KEY, DEFAULT_CONSUMER_SECRET, "read_write"),
            ApiKey(READ_ONLY_CONSUMER_KEY, READ_ONLY_CONSUMER_SECRET, "read"),
        ]
    )
    auth = Authenticator(keys, store.now)
    sender = WebhookSender(store, webhook_faults or WebhookFaults())
    store.listeners.append(sender.changed)
    hooks = _webhook_api(sender)
    v3 = RestV3Api(store)
    v2 = LegacyV2Api(store)

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
                    return v2_error(exc.status, legacy_error_code(exc.code), exc.message)
                response = v3_error(exc.status, exc.code, exc.message, exc.data)
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
        r3("/orders/{id:int}/actions/send_order_details", v3.send_order_details, ["POST"]),
        r3("/refunds", v3.all_refunds, ["GET"]),
        r3("/webhooks", hooks["list"], ["GET"]),
        r3("/webhooks", hooks["create"], ["POST"]),
        r3("/webhooks/{id:int}", hooks["one"], ["GET"], action="GET1"),
        r3("/webhooks/{id:int}", hooks["update"], ["PUT", "PATCH", "POST"], action="PUT"),
        r3("/webhooks/{id:int}", hooks["delete"], ["DELETE"]),
        r3("/products", v3.products, ["GET"]),
        r3("/products/{id:int}", v3.product, ["GET"], action="GET1"),
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
        r2("/products", v2.products, ["GET"]),
        r2("/products/{id:int}", v2.product, ["GET"]),
    ]

    async def no_route(request: Request, exc: Exception) -> Response:
        if request.url.path.startswith(V2):
            return v2_error(
                404, "woocommerce_api_no_route", "No route was found matching the URL and request method"
            )
        return v3_error(404, "rest_no_route", "No route was found matching the URL and request method.")

    app = Starlette(routes=routes, exception_handlers={404: no_route, 405: no_route})
    app.state.store = store
    app.state.webhooks = sender
    return FaultInjector(DateHeader(app, store.now), faults)
