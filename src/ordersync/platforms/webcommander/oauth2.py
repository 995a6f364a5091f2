"""OAuth2 client credentials (RFC 6749 §4.4) for WebCommander's v4 admin API, as an ``httpx.Auth`` flow.

The token is fetched inside the auth flow, through the same client and transport as the API call, so
the HTTP policy's timeouts and transport errors cover it too. It is cached and fetched again shortly
before it expires; a 401 from the API (a token revoked early, or a server clock ahead of ours) gets one
new token and one more try of the request, never more: a second 401 is the policy's ``AuthError``.

oauthlib's ``BackendApplicationClient`` writes the token request body and reads the token response, so
the protocol's details (error bodies, ``expires_in`` forms) are a well-kept library's job. The client id
and secret travel only in the token request's Basic header (§2.3.1), never in a URL, a log line or an
error message.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from urllib.parse import quote_plus

import httpx
import orjson
import structlog
from oauthlib.oauth2 import BackendApplicationClient, OAuth2Error

from ordersync.errors import AuthError, BadResponseError, ServerError
from ordersync.http import USER_AGENT, redact_url

log = structlog.get_logger("ordersync.webcommander.oauth2")

TOKEN_PATH = "/api/v4/oauth2/token"
REFRESH_MARGIN = 30.0
"""Seconds before expiry at which a token is replaced rather than sent."""


@dataclass(frozen=True)
class _Token:
    value: str
    expires_at: float | None
    """By the auth's clock; None when the server did not say (kept until it answers 401)."""


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
            token = self._accept((yield self._token_request()))
        request.headers["Authorization"] = f"Bearer {token.value}"
        response = yield request
        if response.status_code != 401:
            return
        # A concurrent request may already have replaced the refused token; only fetch if it has not.
        fresh = self._current()
        if fresh is None or fresh.value == token.value:
            fresh = self._accept((yield self._token_request()))
        log.info("oauth2.retry_after_401", shop=self.shop, url=redact_url(request.url))
        request.headers["Authorization"] = f"Bearer {fresh.value}"
        yield request

    def _current(self) -> _Token | None:
        with self._lock:
            token = self._token
        if token is None:
            return None
        if token.expires_at is not None and self.clock() >= token.expires_at - self._margin:
            return None
        return token

    def _token_request(self) -> httpx.Request:
        body = BackendApplicationClient(client_id=self._client_id).prepare_request_body()
        pair = f"{quote_plus(self._client_id)}:{quote_plus(self._secret)}".encode()
        return httpx.Request(
            "POST",
            self.token_url,
            content=body.encode(),
            headers={
                "Authorization": "Basic " + base64.b64encode(pair).decode(),
                "Content-Type": "application/x-www-form-urlencoded",
                "Accept": "application/json",
                "User-Agent": USER_AGENT,
            },
        )

    def _accept(self, response: httpx.Response) -> _Token:
        """The token of a token response, cached; a refusal is ``AuthError``."""
        self.tokens_fetched += 1
        url = redact_url(self.token_url)
        status = response.status_code
        if status >= 500:
            raise ServerError(
                f"token endpoint failed: {self._detail(response)}", url=url, status=status, shop=self.shop
            )
        if status != 200:
            raise AuthError(
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
            raise AuthError(
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
        expires_at = self.clock() + float(expires_in) if expires_in is not None else None
        token = _Token(str(params["access_token"]), expires_at)
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
