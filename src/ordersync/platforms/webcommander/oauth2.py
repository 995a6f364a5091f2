"""OAuth2 for WebCommander's v4 admin API, as an ``httpx.Auth`` flow, the way WebCommander's published
authentication page shows it: ``POST /api/v4/oauth2/token`` with a JSON body
``{"grant_type": "client_credentials", "client_id", "client_secret"}``, answered with
``{"access_token", "refresh_token", "expires_in"}``.

Refresh tokens rotate (each works once): an expiring token is renewed with the ``refresh_token`` grant
first, and only if that is refused with a new client grant. A token is renewed a margin before it
expires that is relative to its lifetime (a tenth, at most 30 s), so a 5 s token is still used.

The token is fetched inside the auth flow, through the same client and transport as the API call, so
the HTTP policy's timeouts and transport errors cover it too. A 401 from the API (a token revoked
early, or a server clock ahead of ours) gets one new token and one more try of the request, never
more: a second 401 is the policy's ``AuthError``. A 4xx from the token endpoint is
``TokenRefusedError``: permanent, so the outbox dead-letters the operation at once with the reason.

oauthlib's ``BackendApplicationClient`` reads the token response (error bodies, ``expires_in``
forms). The client id and secret travel only in the token request's body, never in a URL, a log line or
an error message.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass

import httpx
import orjson
import structlog
from oauthlib.oauth2 import BackendApplicationClient, OAuth2Error

from ordersync.errors import BadResponseError, ServerError, TokenRefusedError
from ordersync.http import USER_AGENT, redact_url

log = structlog.get_logger("ordersync.webcommander.oauth2")

TOKEN_PATH = "/api/v4/oauth2/token"
REFRESH_MARGIN = 30.0
"""Seconds before expiry at which a token is replaced rather than sent, at most; a short-lived token
is replaced a tenth of its lifetime before it expires."""


@dataclass(frozen=True)
class _Token:
    value: str
    expires_at: float | None
    """By the auth's clock, less the refresh margin; None when the server did not say (kept until it
    answers 401)."""
    refresh: str | None = None
    """The refresh token that came with it: good for one ``refresh_token`` grant."""


class ClientCredentialsAuth(httpx.Auth):
    """Bearer tokens from ``{base_url}/api/v4/oauth2/token`` for one shop's admin API client."""

    requires_response_body = True

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        *,
        shop: str,
        clock: Callable[[], float] = time.time,
        refresh_margin: float = REFRESH_MARGIN,
    ):
        self.token_url = base_url.rstrip("/") + TOKEN_PATH
        self.shop = shop
        self._client_id = client_id
        self._secret = client_secret
        self.clock = clock
        """Seconds; replaceable, so a test can move time for the client without sleeping."""
        self._margin = refresh_margin
        self._token: _Token | None = None
        self._lock = threading.Lock()
        self.tokens_fetched = 0
        """Token requests sent: what tests and a curious operator look at."""

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self._current()
        if token is None:
            token = yield from self._renew()
        request.headers["Authorization"] = f"Bearer {token.value}"
        response = yield request
        if response.status_code != 401:
            return
        # A concurrent request may already have replaced the refused token; only renew if it has not.
        fresh = self._current()
        if fresh is None or fresh.value == token.value:
            fresh = yield from self._renew(refused=True)
        log.info("oauth2.retry_after_401", shop=self.shop, url=redact_url(request.url))
        request.headers["Authorization"] = f"Bearer {fresh.value}"
        yield request

    def _renew(self, *, refused: bool = False) -> Generator[httpx.Request, httpx.Response, _Token]:
        """A new token: by the refresh token when there is one (it works once, so it is dropped as it
        is used), else, or when that is refused, by a new client grant."""
        with self._lock:
            held = self._token
            refresh = held.refresh if held is not None else None
            if held is not None:
                self._token = _Token(held.value, held.expires_at, None)
        if refresh and not refused:
            response = yield self._token_request({"grant_type": "refresh_token", "refresh_token": refresh})
            if response.status_code == 200 or response.status_code >= 500:
                return self._accept(response)
            log.info("oauth2.refresh_refused", shop=self.shop, status=response.status_code)
        return self._accept((yield self._token_request({"grant_type": "client_credentials"})))

    async def fetch_token(self, client: httpx.AsyncClient) -> None:
        """Ask the token endpoint for a token now (``ordersync check``: the admin API's credentials
        are tested without writing anything); a refusal is ``TokenRefusedError``."""
        flow = self._renew(refused=True)
        request = next(flow)
        try:
            while True:
                response = await client.send(request)
                await response.aread()
                request = flow.send(response)
        except StopIteration:
            return

    def _current(self) -> _Token | None:
        with self._lock:
            token = self._token
        if token is None:
            return None
        if token.expires_at is not None and self.clock() >= token.expires_at:
            return None
        return token

    def _token_request(self, grant: dict[str, str]) -> httpx.Request:
        body = {**grant, "client_id": self._client_id, "client_secret": self._secret}
        return httpx.Request(
            "POST",
            self.token_url,
            content=orjson.dumps(body),
            headers={
                "Content-Type": "application/json",
                "Accept": "application/json",
                "User-Agent": USER_AGENT,
            },
        )

    def _accept(self, response: httpx.Response) -> _Token:
        """The token of a token response, cached; a refusal is ``TokenRefusedError``."""
        self.tokens_fetched += 1
        url = redact_url(self.token_url)
        status = response.status_code
        if status >= 500:
            raise ServerError(
                f"token endpoint failed: {self._detail(response)}", url=url, status=status, shop=self.shop
            )
        if status != 200:
            raise TokenRefusedError(
                f"token request refused: {self._detail(response)}; check admin_api client_id and "
                "client_secret in the config",
                url=url,
                status=status,
                shop=self.shop,
                code=self._error_code(response),
            )
        client = BackendApplicationClient(client_id=self._client_id)
        try:
            params = client.parse_request_body_response(response.text)
        except OAuth2Error as exc:
            raise TokenRefusedError(
                f"token request refused: {self._scrub(str(exc))}", url=url, status=status, shop=self.shop
            ) from None
        except (ValueError, Warning) as exc:
            raise BadResponseError(
                f"token response unusable: {self._scrub(str(exc))}", url=url, status=status, shop=self.shop
            ) from None
        token_type = str(params.get("token_type", "Bearer"))
        if token_type.lower() != "bearer":
            raise BadResponseError(
                f"token_type is {token_type!r}, not Bearer", url=url, status=status, shop=self.shop
            )
        expires_in = params.get("expires_in")
        expires_at = None
        if expires_in is not None:
            lifetime = float(expires_in)
            expires_at = self.clock() + lifetime - min(self._margin, lifetime / 10)
        refresh = params.get("refresh_token")
        token = _Token(str(params["access_token"]), expires_at, str(refresh) if refresh else None)
        with self._lock:
            self._token = token
        log.debug("oauth2.token", shop=self.shop, url=url, expires_in=expires_in)
        return token

    def _error_code(self, response: httpx.Response) -> str | None:
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            return None
        code = body.get("error") if isinstance(body, dict) else None
        return self._scrub(code) if isinstance(code, str) else None

    def _detail(self, response: httpx.Response) -> str:
        """The server's ``error``/``error_description`` (RFC 6749 §5.2), cut short and scrubbed."""
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            return "a body that is not JSON" if response.content.strip() else "an empty body"
        if not isinstance(body, dict):
            return "an unexpected error body"
        parts = [str(body[k])[:200] for k in ("error", "error_description", "message") if body.get(k)]
        return self._scrub(": ".join(parts)) if parts else "an unexpected error body"

    def _scrub(self, text: str) -> str:
        """A server may echo what it was sent: the secret never reaches an error message."""
        return text.replace(self._secret, "REDACTED") if self._secret else text
