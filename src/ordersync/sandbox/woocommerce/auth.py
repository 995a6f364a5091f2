"""Who is calling: WooCommerce's rules for consumer keys, checked the way WooCommerce 11 checks them.

Over HTTPS a key and secret come as HTTP Basic or as ``consumer_key``/``consumer_secret`` query
parameters; over plain HTTP only a one-legged OAuth 1.0a signature counts (HMAC-SHA1 or -SHA256,
a 15-minute timestamp window, nonces used once). wc/v3 verifies a standard RFC 5849 signature;
the legacy API (the Legacy REST API plugin's ``check_oauth_signature``) signs the site's API URL,
``<scheme>://<host>[:<port>]/wc-api/v3/<path>`` (``v3`` whatever version was called; the port unless it
is the scheme's default), with the secret as the key and no trailing ``&``. Unknown keys on wc/v3 are
simply unauthenticated.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from urllib.parse import parse_qsl, urlsplit

from oauthlib.oauth1.rfc5849 import signature
from oauthlib.oauth1.rfc5849.utils import parse_authorization_header

Permission = Literal["read", "write", "read_write"]
WINDOW_SECONDS = 15 * 60
_HASHES = {"HMAC-SHA1": hashlib.sha1, "HMAC-SHA256": hashlib.sha256}


@dataclass(frozen=True)
class ApiKey:
    consumer_key: str
    consumer_secret: str
    permissions: Permission = "read_write"

    def can(self, method: str) -> bool:
        if method in ("GET", "HEAD", "OPTIONS"):
            return self.permissions in ("read", "read_write")
        return self.permissions in ("write", "read_write")


class AuthFailure(Exception):
    def __init__(self, message: str, status: int = 401):
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Call:
    """What authentication looks at in a request."""

    method: str
    url: str
    secure: bool
    authorization: str
    legacy: bool


def _same(a: str, b: str) -> bool:
    # Bytes, so a non-ASCII guess is a refusal and not a TypeError.
    return hmac.compare_digest(a.encode("utf-8", "surrogateescape"), b.encode("utf-8", "surrogateescape"))


class Authenticator:
    def __init__(self, keys: list[ApiKey], clock: Callable[[], datetime]):
        self.keys = {k.consumer_key: k for k in keys}
        self.clock = clock
        self._nonces: dict[str, tuple[set[str], deque[tuple[int, str]]]] = {}
        self._lock = threading.Lock()

    def identify(self, call: Call) -> ApiKey | None:
        """The key making the call, None when unauthenticated; AuthFailure for a refused credential."""
        if call.secure:
            return self._basic(call)
        return self._oauth(call)

    def _basic(self, call: Call) -> ApiKey | None:
        key = secret = None
        if call.authorization.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(call.authorization[6:].strip(), validate=True).decode("utf-8")
                key, _, secret = decoded.partition(":")
            except (binascii.Error, UnicodeDecodeError):
                key = secret = None
        if key is None:
            params = dict(parse_qsl(urlsplit(call.url).query, keep_blank_values=True))
            key, secret = params.get("consumer_key"), params.get("consumer_secret")
        if not key:
            if call.legacy:
                raise AuthFailure("Consumer key is missing.", 404)
            return None
        found = self._find(key)
        if found is None:
            if call.legacy:
                raise AuthFailure("Consumer key is invalid.")
            return None
        if not _same(secret or "", found.consumer_secret):
            raise AuthFailure("Consumer secret is invalid.")
        return found

    def _find(self, key: str) -> ApiKey | None:
        for known, api_key in self.keys.items():
            if _same(key, known):
                return api_key
        return None

    def _oauth(self, call: Call) -> ApiKey | None:
        params = parse_qsl(urlsplit(call.url).query, keep_blank_values=True)
        if call.authorization.lower().startswith("oauth "):
            try:
                header = parse_authorization_header(call.authorization)
            except ValueError:
                raise AuthFailure("Invalid signature - failed to sort parameters.") from None
            params += [(k, v) for k, v in header if k != "realm"]
        oauth = dict(p for p in params if p[0].startswith("oauth_"))
        if not oauth:
            if call.legacy:
                raise AuthFailure("Consumer key is missing.", 404)
            return None  # Basic over plain HTTP is ignored: the caller is anonymous
        for name in (
            "oauth_consumer_key",
            "oauth_signature",
            "oauth_signature_method",
            "oauth_timestamp",
            "oauth_nonce",
        ):
            if not oauth.get(name):
                raise AuthFailure(
                    f"{name} parameter is missing." if call.legacy else f"Missing OAuth parameter {name}"
                )
        found = self._find(oauth["oauth_consumer_key"])
        if found is None:
            raise AuthFailure("Consumer key is invalid.")
        method = oauth["oauth_signature_method"]
        if method not in _HASHES:
            raise AuthFailure("Invalid signature - signature method is invalid.")
        rest = [(k, v) for k, v in params if k != "oauth_signature"]
        normalized = signature.normalize_parameters(rest)
        if call.legacy:
            # get_woocommerce_api_url(''): the site's home URL as it was called, scheme, host and port.
            parts = urlsplit(call.url)
            head, _, tail = parts.path.partition("/wc-api/")
            tail = tail.partition("/")[2]
            port = "" if parts.port in (None, 80 if parts.scheme == "http" else 443) else f":{parts.port}"
            base_uri = f"{parts.scheme}://{parts.hostname}{port}{head}/wc-api/v3/{tail}"
            key = found.consumer_secret.encode()
        else:
            base_uri = signature.base_string_uri(call.url)
            key = (signature.utils.escape(found.consumer_secret) + "&").encode()
        base = signature.signature_base_string(call.method, base_uri, normalized)
        expected = base64.b64encode(hmac.new(key, base.encode(), _HASHES[method]).digest()).decode()
        if not _same(expected, oauth["oauth_signature"]):
            raise AuthFailure("Invalid signature - provided signature does not match.")
        self._timestamp_and_nonce(found, oauth["oauth_timestamp"], oauth["oauth_nonce"], call.legacy)
        return found

    def _timestamp_and_nonce(self, key: ApiKey, timestamp: str, nonce: str, legacy: bool) -> None:
        now = int(self.clock().timestamp())
        try:
            stamp = int(timestamp)
        except ValueError:
            stamp = -1
        if abs(now - stamp) > WINDOW_SECONDS:
            raise AuthFailure("Invalid timestamp." if not legacy else "Invalid timestamp")
        with self._lock:
            seen, order = self._nonces.setdefault(key.consumer_key, (set(), deque()))
            while order and now - order[0][0] > WINDOW_SECONDS:  # oldest first: O(1) per request
                seen.discard(order.popleft()[1])
            if nonce in seen:
                raise AuthFailure("Invalid nonce - nonce has already been used.")
            seen.add(nonce)
            order.append((now, nonce))
