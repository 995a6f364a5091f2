"""The WebCommander external-app API as a Starlette app, in the documents' envelopes.

Errors: the document shows none. The sandbox answers a missing or wrong ``uuid``/``accessToken`` with
HTTP 401 and ``{"status": "error", "message": "Invalid uuid or accessToken"}``, bad input with 400 and
an unknown order with 404, in the same ``{"status": "error", "message": ...}`` envelope the success
bodies use. Clients should rely on the status code, not on the wording.

The v4 admin API (``admin_api.py``: OAuth2 token, send-invoice, comments, cancel) is served by the same
app on the same port, under ``/api/v4``.

``Idempotency-Key`` (sandbox behaviour; neither document shows it, the connector sends it wherever an
API takes one): on any POST write, external-app or v4, the first answer for a key is stored and a repeat
with the same key, path and body gets it again byte for byte, with the same status, and with an
``Idempotent-Replayed: true`` header; the write is not done twice. The same key with another body or
path is 422 ``{"status": "error", "message": ...}``; a repeat while the first is still being answered is
409. Keys belong to the client that sent them (the ``uuid``, or the OAuth2 client of a bearer token) and
are checked only after its credentials are; a 5xx answer is not stored, so a retry after it runs again.
Injected faults (``faults.py``) come before all of this, as a proxy in front of the shop would.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ordersync.sandbox.faults import FaultConfig, FaultInjector
from ordersync.sandbox.http_date import DateHeader
from ordersync.sandbox.webcommander.admin_api import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_TOKEN_LIFETIME,
    TOKEN_PATH,
    TokenIssuer,
    admin_routes,
)
from ordersync.sandbox.webcommander.store import SandboxError, StoredReply, WebCommanderStore

PREFIX = "/external/app/access"
DEFAULT_UUID = "F8A3-A88E-C6EF-B1CB"
DEFAULT_TOKEN = "11b4ec017714ef095b8e115545467fcb"
DEFAULT_PAGE = 10
DEFAULT_MAX_CAP = 50
"""The document does not say how many orders one ``GET orders`` may return. Real hosts cap ``max``
(asked 250, answered 50) and still echo the ``max`` asked for; the sandbox does the same by default,
the strictest reading. ``max_page_size=None`` lifts the cap."""


@dataclass
class Churn:
    """Orders arriving during a scan: one new order every ``every`` list requests, ``count`` in all
    (newest first they land at offset 0 and shift every later offset by one)."""

    every: int = 3
    count: int = 20
    seed: int = 7
    requests: int = 0
    added: list[int] = field(default_factory=list)

    def tick(self, store: WebCommanderStore) -> None:
        self.requests += 1
        if len(self.added) < self.count and self.requests % self.every == 0:
            self.added.append(store.add_generated(self.seed + len(self.added)))


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


def _fingerprint(scope: Scope, body: bytes) -> bytes:
    """What makes two requests "the same" for a key: method, path, query and the JSON they carry
    (key order and spacing aside)."""
    try:
        canonical = orjson.dumps(orjson.loads(body), option=orjson.OPT_SORT_KEYS) if body.strip() else b""
    except orjson.JSONDecodeError:
        canonical = body
    head = f"{scope['method']} {scope['path']}?{scope.get('query_string', b'').decode('latin-1')}\n"
    return hashlib.sha256(head.encode() + canonical).digest()


class IdempotencyKeys:
    """ASGI middleware: the ``Idempotency-Key`` behaviour described in the module docstring.

    ``client_of`` names the authenticated client of a request's headers, or None when its credentials
    are not good (the request then goes to the app untouched, which refuses it)."""

    def __init__(self, app: ASGIApp, store: WebCommanderStore, client_of: Callable[[Headers], str | None]):
        self.app = app
        self.store = store
        self.client_of = client_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope) if scope["type"] == "http" else None
        key = headers.get("idempotency-key") if headers is not None else None
        client = self.client_of(headers) if headers is not None and key else None
        if scope.get("method") != "POST" or scope["path"] == TOKEN_PATH or not key or client is None:
            await self.app(scope, receive, send)
            return
        buffered = await _buffered(receive)
        if buffered is None:
            return  # the client went away before its body had arrived: no request to answer or store
        body, replay_receive = buffered
        fingerprint = _fingerprint(scope, body)
        slot = (client, key)
        store = self.store
        with store.replies_lock:
            stored = store.replies.get(slot)
            busy = stored is None and slot in store.replies_in_flight
            if stored is None and not busy:
                store.replies_in_flight.add(slot)
        if stored is not None:
            if stored.fingerprint != fingerprint:
                message = "Idempotency-Key was already used with another request body or path"
                await _error(422, message)(scope, replay_receive, send)
                return
            replayed = [*stored.headers, (b"idempotent-replayed", b"true")]
            await send({"type": "http.response.start", "status": stored.status, "headers": replayed})
            await send({"type": "http.response.body", "body": stored.body})
            return
        if busy:
            await _error(409, "a request with this Idempotency-Key is still in progress")(
                scope, replay_receive, send
            )
            return
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, replay_receive, capture)
        finally:
            with store.replies_lock:
                store.replies_in_flight.discard(slot)
                if start and start["status"] < 500:
                    store.replies[slot] = StoredReply(
                        fingerprint, start["status"], list(start.get("headers", [])), b"".join(chunks)
                    )


async def _buffered(receive: Receive) -> tuple[bytes, Receive] | None:
    """Read the whole request body, and a ``receive`` that hands it to the app again; None when the
    client disconnected before the body was complete. A server does not act on half a request: were
    it answered (a 400 for the cut JSON) and the answer stored under its key, the client's retry of
    the whole body would meet "already used with another request body" and its write never be done."""
    parts: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(parts)
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay


def create_app(
    store: WebCommanderStore,
    uuid: str = DEFAULT_UUID,
    access_token: str = DEFAULT_TOKEN,
    faults: FaultConfig | None = None,
    max_page_size: int | None = DEFAULT_MAX_CAP,
    *,
    churn: Churn | None = None,
    token_form: bool = False,
    replay_keys: bool = True,
    client_id: str = DEFAULT_CLIENT_ID,
    client_secret: str = DEFAULT_CLIENT_SECRET,
    token_lifetime: float = DEFAULT_TOKEN_LIFETIME,
    clock: Callable[[], float] = time.time,
) -> FaultInjector:
    """The app behind its fault injector; the Starlette app inside keeps ``state.store`` (the shop's
    state) and ``state.tokens`` (the v4 token issuer). ``client_id``/``client_secret`` are the v4 admin
    API's OAuth2 client; its tokens live ``token_lifetime`` seconds by ``clock`` (tests pass their own);
    ``token_form`` also takes a form-urlencoded token request (JSON only by default, the strictest);
    ``replay_keys=False`` ignores ``Idempotency-Key`` as a shop that follows only the documents does."""
    issuer = TokenIssuer(client_id, client_secret, token_lifetime, clock)

    def authorised(request: Request | Headers) -> bool:
        headers = request.headers if isinstance(request, Request) else request
        given_uuid = headers.get("uuid", "")
        given_token = headers.get("accesstoken", "")
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
        asked = max_
        if max_page_size is not None and (max_ == -1 or max_ > max_page_size):
            max_ = max_page_size
        if churn is not None:
            churn.tick(store)
        total, encoded = store.list_page(offset, max_)
        # The echoed `max` is the one asked for, not the one applied, as the capping hosts do.
        head = orjson.dumps({"status": "success", "total": total, "max": str(asked), "offset": str(offset)})
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
        *admin_routes(store, issuer, token_form=token_form),
    ]
    app = Starlette(routes=routes)
    app.state.store = store
    app.state.tokens = issuer
    app.state.churn = churn

    def client_of(headers: Headers) -> str | None:
        if "authorization" in headers:
            client = issuer.client_for(headers["authorization"])
            return f"v4:{client}" if client is not None else None
        return f"app:{uuid}" if authorised(headers) else None

    keyed: ASGIApp = IdempotencyKeys(app, store, client_of) if replay_keys else app
    served = FaultInjector(DateHeader(keyed, lambda: datetime.now(UTC)), faults)
    served.state = app.state  # the shop's state (store, tokens, churn), for tests and tools
    return served
