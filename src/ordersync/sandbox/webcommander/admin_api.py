"""WebCommander's v4 admin API in the sandbox: an OAuth2 token endpoint and the order writes the
external-app API lacks (send-invoice, comments with customer visibility, cancel).

It is served by the same Starlette app and port as the external-app API, as the connector's tests and
the embedded sandbox need one process per shop. What the document (webcommander-v4-admin-orders.txt)
does not show, the sandbox decides, and clients should rely on status codes rather than wording:

* ``POST /api/v4/oauth2/token`` as WebCommander's published authentication page shows it: a JSON body
  ``{"grant_type": "client_credentials", "client_id", "client_secret"}``, answered with
  ``{"access_token", "refresh_token", "expires_in"}``; ``{"grant_type": "refresh_token",
  "refresh_token": ...}`` (client id and secret beside it, or not) renews. Refresh tokens rotate: each
  works once, a used or unknown one is 400 ``{"error": "invalid_grant"}``. A body that is not JSON is
  415, the strictest reading; ``token_form=True`` also takes RFC 6749's form-urlencoded body with the
  client by HTTP Basic or in the body (not both), the other reading a host may offer. A wrong client
  is 401 ``{"error": "invalid_client"}``, another grant 400 ``{"error": "unsupported_grant_type"}``.
  Tokens are opaque and expire ``token_lifetime`` seconds after issue by the app's clock.
* Every v4 order endpoint needs ``Authorization: Bearer <token>``; a missing, unknown or expired token
  is 401 ``{"error": "invalid_token"}`` with ``WWW-Authenticate: Bearer error="invalid_token"`` (RFC 6750).
* An unknown order is 404 and bad input 400, in the external-app envelope
  ``{"status": "error", "message": ...}``.
* The comments endpoints answer every comment of the order, oldest first, in the document's snake_case
  shape; ``flagged`` is what makes a comment visible to the customer. The non-admin path
  (``/api/v4/orders/...``) records the comment as not written by an admin.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ordersync.sandbox.webcommander.store import SandboxError, WebCommanderStore

V4 = "/api/v4"
TOKEN_PATH = f"{V4}/oauth2/token"
DEFAULT_CLIENT_ID = "wc-sandbox-client"
DEFAULT_CLIENT_SECRET = "wc-sandbox-secret-5f2b9c0d7e4a"
DEFAULT_TOKEN_LIFETIME = 3600
ADMIN_NAME = "API Client"

Handler = Callable[[Request], Awaitable[Response]]


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


def _oauth_error(
    status: int, error: str, description: str, headers: dict[str, str] | None = None
) -> Response:
    # RFC 6749 §5.2: token errors are never cached.
    no_store = {"Cache-Control": "no-store", "Pragma": "no-cache", **(headers or {})}
    return _json({"error": error, "error_description": description}, status, no_store)


INVALID_TOKEN = {"WWW-Authenticate": 'Bearer error="invalid_token"'}


@dataclass(frozen=True)
class _Grant:
    client_id: str
    expires_at: float


class TokenIssuer:
    """Issues and checks bearer tokens for one client; expiry is judged by ``clock`` (seconds)."""

    def __init__(self, client_id: str, client_secret: str, lifetime: float, clock: Callable[[], float]):
        self.client_id = client_id
        self._secret = client_secret
        self.lifetime = lifetime
        self.clock = clock
        self._grants: dict[str, _Grant] = {}
        self._refresh: set[str] = set()
        self._lock = threading.Lock()
        self.issued = 0
        self.refreshed = 0

    def check_client(self, client_id: str, client_secret: str) -> bool:
        # Compared as bytes: compare_digest refuses non-ASCII str, and that must be a 401, not a 500.
        return hmac.compare_digest(client_id.encode(), self.client_id.encode()) & hmac.compare_digest(
            client_secret.encode(), self._secret.encode()
        )

    def issue(self) -> tuple[str, str]:
        """A new access token and the refresh token that renews it once."""
        token, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        with self._lock:
            self._grants[token] = _Grant(self.client_id, self.clock() + self.lifetime)
            self._refresh.add(refresh)
            self.issued += 1
        return token, refresh

    def use_refresh(self, refresh: str) -> bool:
        """Spend a refresh token: True the first time, False ever after (rotation)."""
        with self._lock:
            if refresh not in self._refresh:
                return False
            self._refresh.discard(refresh)
            self.refreshed += 1
            return True

    def client_for(self, authorization: str | None) -> str | None:
        """The client a ``Bearer`` Authorization header stands for, or None if it is not a live token."""
        scheme, _, token = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        with self._lock:
            grant = self._grants.get(token.strip())
        if grant is None or self.clock() >= grant.expires_at:
            return None
        return grant.client_id

    def revoke_all(self) -> None:
        """Forget every token (tests: a server that lost its sessions answers 401 to a cached token)."""
        with self._lock:
            self._grants.clear()


def _basic_credentials(header: str) -> tuple[str, str] | None:
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        return None
    return unquote_plus(client_id), unquote_plus(secret)


def token_endpoint(issuer: TokenIssuer, *, accept_form: bool = False) -> Handler:
    async def token(request: Request) -> Response:
        raw = await request.body()
        header = request.headers.get("authorization")
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        basic: tuple[str, str] | None = None
        if content_type == "application/json":
            try:
                body = orjson.loads(raw)
            except orjson.JSONDecodeError:
                return _oauth_error(400, "invalid_request", "the body is not valid JSON")
            if not isinstance(body, dict):
                return _oauth_error(400, "invalid_request", "the body must be a JSON object")
            form = {k: str(v) for k, v in body.items() if v is not None}
        elif accept_form and content_type == "application/x-www-form-urlencoded":
            try:
                form = dict(parse_qsl(raw.decode(), keep_blank_values=True))
            except UnicodeDecodeError:
                return _oauth_error(400, "invalid_request", "the body is not form-urlencoded text")
            basic = _basic_credentials(header) if header else None
            if basic is not None and ("client_id" in form or "client_secret" in form):
                return _oauth_error(
                    400, "invalid_request", "client credentials given twice (header and body)"
                )
        else:
            return _oauth_error(415, "invalid_request", "the token request body must be application/json")
        grant_type = form.get("grant_type")
        if not grant_type:
            return _oauth_error(400, "invalid_request", "grant_type is required")
        if grant_type == "refresh_token":
            if "client_id" in form and not issuer.check_client(
                form.get("client_id", ""), form.get("client_secret", "")
            ):
                return _oauth_error(401, "invalid_client", "client authentication failed")
            if not issuer.use_refresh(form.get("refresh_token", "")):
                return _oauth_error(400, "invalid_grant", "the refresh token is invalid or was already used")
        elif grant_type == "client_credentials":
            given = basic or (form.get("client_id", ""), form.get("client_secret", ""))
            if not issuer.check_client(*given):
                challenge = {"WWW-Authenticate": 'Basic realm="webcommander"'}
                return _oauth_error(401, "invalid_client", "client authentication failed", challenge)
        else:
            return _oauth_error(400, "unsupported_grant_type", f"grant_type {grant_type!r} is not supported")
        access, refresh = issuer.issue()
        body = {"access_token": access, "refresh_token": refresh, "expires_in": int(issuer.lifetime)}
        return _json(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    return token


def _v4_stamp(stamp: str | None) -> str | None:
    """The store's external-app stamp (``2023-05-10T10: 02: 15``) as plain ISO-8601."""
    return stamp.replace(": ", ":") if isinstance(stamp, str) else stamp


def v4_comment(comment: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": comment["id"],
        "content": comment["content"],
        "admin_name": comment.get("adminName"),
        "is_visible_to_customer": bool(comment.get("isVisibleToCustomer")),
        "is_admin": bool(comment.get("isAdmin")),
        "created": _v4_stamp(comment.get("created")),
    }


async def _optional_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise SandboxError(400, "request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise SandboxError(400, "request body must be a JSON object")
    return body


def _same_order(body: dict[str, Any], key: str, order_id: str) -> None:
    given = body.get(key)
    if given is not None and str(given).strip() != order_id:
        raise SandboxError(400, f"'{key}' {given!r} does not match the order {order_id} in the path")


def admin_routes(store: WebCommanderStore, issuer: TokenIssuer, *, token_form: bool = False) -> list[Route]:
    """The v4 routes; each write goes through the store like the external-app writes."""

    def bearer(handler: Handler) -> Handler:
        async def wrapped(request: Request) -> Response:
            if issuer.client_for(request.headers.get("authorization")) is None:
                return _json({"error": "invalid_token"}, 401, INVALID_TOKEN)
            try:
                return await handler(request)
            except SandboxError as exc:
                return _json({"status": "error", "message": exc.message}, exc.status)

        return wrapped

    async def send_invoice(request: Request) -> Response:
        order_id = request.path_params["order_id"]
        body = await _optional_body(request)
        _same_order(body, "order_id", order_id)
        store.record_invoice(order_id, body.get("payment_status"), body.get("notes"))
        return _json({"status": "success"})

    def comments(admin: bool) -> Handler:
        async def add(request: Request) -> Response:
            order_id = request.path_params["order_id"]
            body = await _optional_body(request)
            _same_order(body, "id", order_id)
            flagged = body.get("flagged", False)
            if not isinstance(flagged, bool):
                raise SandboxError(400, f"'flagged' must be true or false, got {flagged!r}")
            store.add_comment(
                order_id,
                body.get("content"),
                visible=flagged,
                admin=ADMIN_NAME if admin else None,
                is_admin=admin,
                field="content",
            )
            listed = store.get(order_id)["orderComment"]
            return _json({"comments": [v4_comment(c) for c in listed]})

        return add

    async def cancel(request: Request) -> Response:
        store.set_status(request.path_params["order_id"], "cancelled")
        return Response(status_code=204)

    routes: list[Route] = [
        Route(TOKEN_PATH, token_endpoint(issuer, accept_form=token_form), methods=["POST"])
    ]
    for prefix, admin in ((f"{V4}/admin/orders", True), (f"{V4}/orders", False)):
        routes += [
            Route(f"{prefix}/{{order_id}}/comments", bearer(comments(admin)), methods=["POST"]),
            Route(f"{prefix}/{{order_id}}/cancel", bearer(cancel), methods=["POST"]),
        ]
    routes.append(
        Route(f"{V4}/admin/orders/{{order_id}}/send-invoice", bearer(send_invoice), methods=["POST"])
    )
    return routes
