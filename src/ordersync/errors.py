"""The error tree, drawn once so callers know what to catch.

    OrderSyncError
    ├── ConfigError              the config file is unusable; raised before any request
    ├── MirrorLockedError        another process holds the DuckDB file
    └── HttpError                a request failed for good (url and status named, secrets redacted)
        ├── AuthError            401 / refused credentials: retrying will not help
        ├── NotFoundError        404
        ├── ClientRequestError   other 4xx: our request is wrong
        ├── ServerError          5xx / 429 still failing after every retry
        ├── TransportError       timeouts and connection failures after every retry
        └── BadResponseError     a 2xx body that is not the JSON we expect (HTML, truncated, empty)

Mapping failures are not here: they are data problems (``ordersync.mapping.errors.MappingError``)
that quarantine one record instead of stopping a run.
"""

from __future__ import annotations


class OrderSyncError(Exception):
    """Base of every error ordersync raises on purpose."""


class ConfigError(OrderSyncError):
    pass


class MirrorError(OrderSyncError):
    """The mirror file cannot be opened or written (a missing or read-only folder, a full disk)."""


class MirrorLockedError(MirrorError):
    """Another process holds the mirror file longer than ``mirror.lock_wait``."""


class HttpError(OrderSyncError):
    def __init__(
        self,
        message: str,
        *,
        url: str,
        status: int | None = None,
        shop: str | None = None,
        code: str | None = None,
    ):
        self.url = url
        self.status = status
        self.shop = shop
        self.code = code
        """The platform's error code (WooCommerce ``code``) when the body names one."""
        self.retry_after: float | None = None
        """Seconds the server asked us to wait (Retry-After) before the last failure, if it did."""
        self.permanent = False
        """Asking again cannot help (a certificate that does not verify): never retried or resumed."""
        where = f"shop {shop!r}: " if shop else ""
        answer = f"HTTP {status}" if status is not None else "no response"
        super().__init__(f"{where}{message} ({answer} from {url})")

    def after_retries(self, tries: int, seconds: float) -> HttpError:
        """Say how long the shop was tried before giving up: an outage and a one-off differ."""
        if tries > 1:
            spent = f"{seconds:.1f}" if seconds < 10 else f"{seconds:.0f}"
            self.args = (f"{self.args[0]}, still failing after {tries} tries over {spent} s",)
        return self


class AuthError(HttpError):
    pass


class TokenRefusedError(AuthError):
    """The OAuth2 token endpoint answered 4xx: the credentials or the request are wrong, and sending
    the same again will not change that (an outbox operation needing it is dead at once)."""


class NotFoundError(HttpError):
    pass


class ClientRequestError(HttpError):
    pass


class ServerError(HttpError):
    pass


class TransportError(HttpError):
    pass


class BadResponseError(HttpError):
    pass
