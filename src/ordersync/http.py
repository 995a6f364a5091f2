"""The one HTTP policy: timeouts, retries with backoff and jitter, Retry-After, error mapping, redaction.

Every platform client sends through :class:`HttpPolicy`, so what happens on a 429, a 503, an HTML
error page or a timeout is decided here, in one table, and nowhere else.
"""

from __future__ import annotations

import random
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from enum import Enum
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import orjson
import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type

from ordersync import __version__
from ordersync.config import HttpSettings
from ordersync.errors import (
    AuthError,
    BadResponseError,
    ClientRequestError,
    ConfigError,
    HttpError,
    NotFoundError,
    ServerError,
    TransportError,
)
from ordersync.metrics import REQUESTS, RETRIES, status_class
from ordersync.rawpage import ShapeError

log = structlog.get_logger("ordersync.http")

USER_AGENT = f"ordersync/{__version__} (+order sync connector; httpx/{httpx.__version__})"

_SECRET_PARAMS = {
    "consumer_key",
    "consumer_secret",
    "access_token",
    "accesstoken",
    "token",
    "key",
    "secret",
    "password",
    "client_secret",
    "signature",
}


def redact_url(url: str | httpx.URL) -> str:
    """Drop credentials from a URL before it reaches a log line or an error message."""
    parts = urlsplit(str(url))
    netloc = parts.netloc.rsplit("@", 1)[-1]
    query = [
        (k, "REDACTED" if k.lower() in _SECRET_PARAMS else v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if not k.lower().startswith("oauth_")  # a signature's parts: noise to a reader, a secret to keep
    ]
    return urlunsplit((parts.scheme, netloc, parts.path, urlencode(query, safe="[]-_.~"), ""))


_MAX_TRIES = 1000
"""A ceiling on tries beside the time budget: with no backoff configured they would otherwise spin."""


class Action(Enum):
    OK = "ok"
    RETRY = "retry"
    AUTH = "auth"
    NOT_FOUND = "not_found"
    FAIL = "fail"


# status -> what the policy does; anything not listed: 2xx OK, other 4xx FAIL, other 5xx RETRY.
STATUS_ACTIONS: dict[int, Action] = {
    401: Action.AUTH,
    403: Action.AUTH,  # JSON 403 is a refused credential; an HTML 403 from a WAF is retried (see classify)
    404: Action.NOT_FOUND,
    408: Action.RETRY,
    409: Action.RETRY,
    425: Action.RETRY,
    429: Action.RETRY,
}


def looks_like_html(response: httpx.Response) -> bool:
    ctype = response.headers.get("content-type", "")
    return "html" in ctype or response.content[:64].lstrip().lower().startswith((b"<!doctype", b"<html"))


def classify(response: httpx.Response) -> Action:
    status = response.status_code
    if status == 403 and looks_like_html(response):
        return Action.RETRY
    if status in STATUS_ACTIONS:
        return STATUS_ACTIONS[status]
    if 200 <= status < 300:
        return Action.OK
    if status >= 500:
        return Action.RETRY
    return Action.FAIL


class _Retryable(Exception):
    """A failure worth another try; carries the error to raise if the tries run out."""

    def __init__(self, final: HttpError, retry_after: float | None = None):
        super().__init__(str(final))
        self.final = final
        self.retry_after = retry_after


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    from datetime import UTC, datetime

    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _error_info(response: httpx.Response) -> tuple[str, str | None]:
    """A one-line description of an error body, and the platform's error code if it names one
    (WooCommerce's ``code``, or ``errors[0].code`` on the legacy API); the body is parsed once."""
    if looks_like_html(response):
        return "an HTML page instead of JSON", None
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        text = response.text.strip().replace("\n", " ")
        return (f"body {text[:120]!r}" if text else "an empty body"), None
    if not isinstance(body, dict):
        return "an unexpected error body", None
    errors = body.get("errors")
    first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else None
    code = body.get("code") if isinstance(body.get("code"), str) else None
    if code is None and first is not None and isinstance(first.get("code"), str):
        code = first["code"]
    if isinstance(body.get("message"), str) and isinstance(body.get("code"), str):
        return f"{body['message'][:200]} [{body['code']}]", code
    for key in ("message", "error", "code"):
        if isinstance(body.get(key), str):
            return body[key][:200], code
    if first is not None:
        return str(first.get("message") or first)[:200], code
    return "an unexpected error body", code


@dataclass(frozen=True)
class JsonResponse:
    data: Any
    response: httpx.Response

    @property
    def headers(self) -> httpx.Headers:
        return self.response.headers


class HttpPolicy:
    """Sends requests with retries; raises the error tree of ``ordersync.errors`` when it gives up."""

    def __init__(
        self,
        settings: HttpSettings,
        *,
        shop: str,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        jitter: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.settings = settings
        self.shop = shop
        self._sleep = sleep
        self._jitter = jitter
        self._clock = clock
        self.retries = 0
        self.requests = 0
        """Every request sent, retries included: what a run cost the shop."""
        self.answered = False
        """Whether the shop has answered at all (any HTTP status) since this policy was made."""

    def timeout(self) -> httpx.Timeout:
        return httpx.Timeout(self.settings.timeout, connect=self.settings.connect_timeout)

    def backoff(self, attempt: int, retry_after: float | None) -> float:
        """Exponential backoff with full jitter, never shorter than the server's Retry-After."""
        base = min(self.settings.backoff_max, self.settings.backoff_base * (2 ** (attempt - 1)))
        delay = base * (0.5 + self._jitter() / 2)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.settings.max_retry_after))
        return delay

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        retry_after = exc.retry_after if isinstance(exc, _Retryable) else None
        return self.backoff(state.attempt_number, retry_after)

    def _stopper(self, retry: bool, started: float) -> Callable[[RetryCallState], bool]:
        """Stop when the next pause would end past ``retry_for`` seconds since the first try (a budget
        in time, so a shop restarting for two minutes is waited out however the pauses fall), or
        when ``max_retries`` is set and spent. ``retry=False`` sends once. Until the shop has answered
        once, the budget is ``first_contact_for``: a host or port that was never right fails fast."""
        cap = self.settings.max_retries

        def stop(state: RetryCallState) -> bool:
            if not retry or state.attempt_number > (_MAX_TRIES if cap is None else cap):
                return True
            budget = self.settings.retry_for
            if not self.answered:
                budget = min(budget, self.settings.first_contact_for)
            return self._clock() - started + (state.upcoming_sleep or 0.0) > budget

        return stop

    def _before_sleep(self, state: RetryCallState) -> None:
        self.retries += 1
        RETRIES.labels(self.shop).inc()
        exc = state.outcome.exception() if state.outcome else None
        log.warning(
            "http.retry",
            shop=self.shop,
            attempt=state.attempt_number,
            wait_s=round(state.next_action.sleep, 3) if state.next_action else None,
            error=str(exc),
        )

    async def request_json(
        self,
        client: httpx.AsyncClient,
        method: str,
        url: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
        retry: bool = True,
        allow_empty: bool = False,
        decode: Callable[[bytes], Any] = orjson.loads,
    ) -> JsonResponse:
        """Send with retries and return the decoded JSON body; a body that is not JSON is retried too.

        ``retry=False`` sends once: for writes that are not idempotent, where a timeout or a 5xx may
        still have taken effect, so only the outbox (which first looks for the effect) may try again.
        ``allow_empty`` accepts an empty 2xx body (a 204) as ``None``. ``decode`` turns the body into
        ``data`` (a list page's reader takes only what paging needs); a ``ValueError`` from it is a body
        that is not JSON (retried), a :class:`ShapeError` JSON of the wrong shape (not retried)."""
        started, tries = self._clock(), 0
        kwargs: dict[str, Any] = {
            "stop": self._stopper(retry, started),
            "wait": self._wait,
            "retry": retry_if_exception_type(_Retryable),
            "before_sleep": self._before_sleep,
            "reraise": True,
        }
        if self._sleep is not None:
            kwargs["sleep"] = self._sleep
        try:
            async for attempt in AsyncRetrying(**kwargs):
                tries += 1
                with attempt:
                    return await self._once(
                        client, method, url, allow_empty, decode, params=params, json=json, headers=headers
                    )
        except _Retryable as exc:
            exc.final.retry_after = exc.retry_after
            raise exc.final.after_retries(tries, self._clock() - started) from None
        raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover

    async def _once(
        self,
        client: httpx.AsyncClient,
        method: str,
        url: str,
        allow_empty: bool = False,
        decode: Callable[[bytes], Any] = orjson.loads,
        **kwargs: Any,
    ) -> JsonResponse:
        shown = url
        self.requests += 1
        try:
            response = await client.request(method, url, **kwargs)
        except httpx.TimeoutException as exc:
            REQUESTS.labels(self.shop, "error").inc()
            raise _Retryable(
                TransportError(f"timed out ({type(exc).__name__})", url=redact_url(shown), shop=self.shop)
            ) from None
        except httpx.TransportError as exc:
            REQUESTS.labels(self.shop, "error").inc()
            where, cause, permanent = _connection_problem(exc, client, url)
            error = TransportError(f"cannot reach {where}: {cause}", url=redact_url(shown), shop=self.shop)
            if permanent:
                error.permanent = True
                raise error from None  # a certificate does not get better by asking again
            raise _Retryable(error) from None
        self.answered = True
        REQUESTS.labels(self.shop, status_class(response.status_code)).inc()
        shown = redact_url(response.request.url)
        action = classify(response)
        status = response.status_code
        if action is Action.OK:
            if looks_like_html(response):
                raise _Retryable(
                    BadResponseError(
                        "got an HTML page instead of JSON", url=shown, status=status, shop=self.shop
                    )
                )
            if allow_empty and not response.content.strip():
                return JsonResponse(None, response)
            try:
                return JsonResponse(decode(response.content), response)
            except ShapeError as exc:
                raise BadResponseError(str(exc), url=shown, status=status, shop=self.shop) from None
            except ValueError:
                problem = (
                    "response body is not valid JSON" if response.content.strip() else "got an empty body"
                )
                raise _Retryable(
                    BadResponseError(problem, url=shown, status=status, shop=self.shop)
                ) from None
        detail, code = _error_info(response)
        if action is Action.RETRY:
            error_cls = BadResponseError if looks_like_html(response) else ServerError
            raise _Retryable(
                error_cls(f"server error: {detail}", url=shown, status=status, shop=self.shop, code=code),
                retry_after=parse_retry_after(response.headers.get("retry-after")),
            )
        if action is Action.AUTH:
            raise AuthError(
                f"credentials refused: {detail}; check the shop's keys in the config",
                url=shown,
                status=status,
                shop=self.shop,
                code=code,
            )
        if action is Action.NOT_FOUND:
            raise NotFoundError(f"not found: {detail}", url=shown, status=status, shop=self.shop, code=code)
        raise ClientRequestError(
            f"request refused: {detail}", url=shown, status=status, shop=self.shop, code=code
        )


def build_client(
    base_url: str,
    policy: HttpPolicy,
    *,
    headers: dict[str, str] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    max_connections: int = 8,
    auth: httpx.Auth | None = None,
    verify: bool | str | ssl.SSLContext = True,
) -> httpx.AsyncClient:
    """An AsyncClient with our timeouts, User-Agent and pool size; tests pass a MockTransport or ASGI app.

    ``verify`` is a bool, the path of a CA bundle (a shop with a self-signed certificate) or a context
    from :func:`tls_verify`, for clients that share one."""
    return httpx.AsyncClient(
        base_url=base_url,
        headers={"User-Agent": USER_AGENT, "Accept": "application/json", **(headers or {})},
        timeout=policy.timeout(),
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        transport=transport,
        follow_redirects=False,
        auth=auth,
        verify=tls_verify(verify, policy.shop),
    )


def tls_verify(verify: bool | str | ssl.SSLContext, shop: str) -> bool | ssl.SSLContext:
    """A CA bundle path loaded into an SSL context; a file that cannot be read is a config error."""
    if not isinstance(verify, str):
        return verify
    try:
        return ssl.create_default_context(cafile=verify)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"shop {shop!r}: cannot load the CA bundle {verify!r}: {exc}") from None


def _connection_problem(
    exc: httpx.TransportError, client: httpx.AsyncClient, url: str
) -> tuple[str, str, bool]:
    """(host:port, the cause in words, whether it is permanent) for a request that got no answer: a
    certificate that does not verify is permanent and names the fix; refused connections and DNS
    failures are said as such, and retried."""
    try:
        target = exc.request.url
    except RuntimeError:  # raised before a request was bound
        target = client.base_url.join(url)
    port = target.port or {"https": 443, "http": 80}.get(target.scheme, 0)
    where = f"{target.host}:{port}"
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, ssl.SSLCertVerificationError):
            reason = (
                getattr(cause, "verify_message", None)
                or getattr(cause, "reason", None)
                or "certificate verify failed"
            )
            return (
                where,
                f"certificate verify failed: {reason}; for a shop with its own CA set the shop's "
                "verify_tls to its CA bundle",
                True,
            )
        if isinstance(cause, ssl.SSLError):
            return where, f"TLS failed: {cause.reason or cause}", False
        if isinstance(cause, ConnectionRefusedError):
            return where, "connection refused (is the shop up, and is this its port?)", False
        if isinstance(cause, socket.gaierror):
            return where, f"DNS lookup failed ({cause.strerror or cause})", False
        cause = cause.__cause__ or cause.__context__
    text = str(exc).strip()
    return where, f"connection failed ({type(exc).__name__}{': ' + text if text else ''})", False
