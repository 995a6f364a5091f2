"""The WebCommander external-app API as a Starlette app, in the documents' envelopes.

Errors: the document shows none. The sandbox answers a missing or wrong ``uuid``/``accessToken`` with
HTTP 401 and ``{"status": "error", "message": "Invalid uuid or accessToken"}``, bad input with 400 and
an unknown order with 404, in the same ``{"status": "error", "message": ...}`` envelope the success
bodies use. Clients should rely on the status code, not on the wording.
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ordersync.sandbox.faults import FaultConfig, FaultInjector
from ordersync.sandbox.http_date import DateHeader
from ordersync.sandbox.webcommander.store import SandboxError, WebCommanderStore

PREFIX = "/external/app/access"
DEFAULT_UUID = "F8A3-A88E-C6EF-B1CB"
DEFAULT_TOKEN = "11b4ec017714ef095b8e115545467fcb"
DEFAULT_PAGE = 10


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _error(status: int, message: str) -> Response:
    return _json({"status": "error", "message": message}, status)


def _int_param(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise SandboxError(400, f"'{name}' must be an integer, got {raw!r}") from None


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        raise SandboxError(400, "request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise SandboxError(400, "request body must be a JSON object")
    return body


def create_app(
    store: WebCommanderStore,
    uuid: str = DEFAULT_UUID,
    access_token: str = DEFAULT_TOKEN,
    faults: FaultConfig | None = None,
    max_page_size: int | None = None,
) -> FaultInjector:
    """The app behind its fault injector; ``app.app.state.store`` is the shop's state."""

    def authorised(request: Request) -> bool:
        given_uuid = request.headers.get("uuid", "")
        given_token = request.headers.get("accesstoken", "")
        # Compared as bytes: compare_digest refuses non-ASCII str, and a stray byte must be a 401, not a 500.
        return hmac.compare_digest(given_uuid.encode(), uuid.encode()) & hmac.compare_digest(
            given_token.encode(), access_token.encode()
        )

    def endpoint(handler):  # type: ignore[no-untyped-def]
        async def wrapped(request: Request) -> Response:
            if not authorised(request):
                return _error(401, "Invalid uuid or accessToken")
            try:
                return await handler(request)
            except SandboxError as exc:
                return _error(exc.status, exc.message)

        return wrapped

    async def orders(request: Request) -> Response:
        max_ = _int_param(request, "max", DEFAULT_PAGE)
        offset = _int_param(request, "offset", 0)
        if offset < 0 or max_ == 0 or max_ < -1:
            raise SandboxError(400, "'max' must be -1 or positive and 'offset' not negative")
        if max_page_size is not None and (max_ == -1 or max_ > max_page_size):
            max_ = max_page_size
        total, encoded = store.list_page(offset, max_)
        head = orjson.dumps({"status": "success", "total": total, "max": str(max_), "offset": str(offset)})
        body = head[:-1] + b',"orders":[' + b",".join(encoded) + b"]}"
        return Response(body, media_type="application/json")

    async def order(request: Request) -> Response:
        order_id = request.query_params.get("id")
        if not order_id:
            raise SandboxError(400, "'id' is required")
        return _json({"order": store.single(order_id)})

    async def order_create(request: Request) -> Response:
        return _json({"status": "success", "order": store.create(await _body(request)), "paymentData": {}})

    async def change_status(request: Request) -> Response:
        body = await _body(request)
        store.set_status(body.get("id"), body.get("status"))
        return _json({"status": "success"})

    async def comment_add(request: Request) -> Response:
        body = await _body(request)
        return _json({"status": "success", "id": store.add_comment(body.get("orderId"), body.get("message"))})

    async def payment_refund(request: Request) -> Response:
        body = await _body(request)
        payment_id = store.refund_payment(body.get("id"), body.get("amount"))
        return _json({"status": "success", "haveToReAdjustInvetory": False, "id": payment_id})

    async def payment_status(request: Request) -> Response:
        body = await _body(request)
        store.set_payment_status(body.get("id"), body.get("status"))
        return _json({"status": "success"})

    async def make_payment(request: Request) -> Response:
        body = await _body(request)
        payment_id = store.make_payment(
            body.get("orderId"), body.get("paymentGateway"), body.get("date"), body.get("amount")
        )
        return _json({"status": "success", "id": payment_id})

    async def gateways(request: Request) -> Response:
        max_ = _int_param(request, "max", DEFAULT_PAGE)
        offset = _int_param(request, "offset", 0)
        listed = store.gateways[offset:] if max_ < 0 else store.gateways[offset : offset + max_]
        return _json(
            {
                "status": "success",
                "total": len(store.gateways),
                "max": str(max_),
                "offset": str(offset),
                "paymentGatewayList": listed,
            }
        )

    async def update_gateway(request: Request) -> Response:
        store.update_gateway(await _body(request))
        return _json({"status": "success", "message": "Successfully Updated"})

    routes = [
        Route(f"{PREFIX}/orders", endpoint(orders), methods=["GET"]),
        Route(f"{PREFIX}/order", endpoint(order), methods=["GET"]),
        Route(f"{PREFIX}/order-create", endpoint(order_create), methods=["POST"]),
        Route(f"{PREFIX}/change-order-Status", endpoint(change_status), methods=["POST"]),
        Route(f"{PREFIX}/order-comment-add", endpoint(comment_add), methods=["POST"]),
        Route(f"{PREFIX}/order-payment-refund", endpoint(payment_refund), methods=["POST"]),
        Route(f"{PREFIX}/change-order-payment-status", endpoint(payment_status), methods=["POST"]),
        Route(f"{PREFIX}/make-order-payment", endpoint(make_payment), methods=["POST"]),
        Route(f"{PREFIX}/payment-gateways", endpoint(gateways), methods=["GET"]),
        Route(f"{PREFIX}/update-payment-gateway", endpoint(update_gateway), methods=["POST"]),
    ]
    app = Starlette(routes=routes)
    app.state.store = store
    return FaultInjector(DateHeader(app, lambda: datetime.now(UTC)), faults)
