"""WooCommerce's three ways to present a consumer key, as ``httpx.Auth`` flows.

Each request is signed as it is sent, so a retry gets a fresh OAuth nonce and timestamp (WooCommerce
refuses a nonce it has seen). Basic and query keys are only honoured over HTTPS; over plain HTTP only
OAuth 1.0a one-legged signatures are.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Generator
from typing import Literal
from urllib.parse import parse_qsl, urlsplit

import httpx
from oauthlib.common import generate_nonce, generate_timestamp
from oauthlib.oauth1 import SIGNATURE_HMAC_SHA1, SIGNATURE_HMAC_SHA256, SIGNATURE_TYPE_QUERY, Client
from oauthlib.oauth1.rfc5849 import signature

SignatureMethod = Literal["HMAC-SHA256", "HMAC-SHA1"]
_HASHES = {"HMAC-SHA256": hashlib.sha256, "HMAC-SHA1": hashlib.sha1}
_OAUTHLIB_METHODS = {"HMAC-SHA256": SIGNATURE_HMAC_SHA256, "HMAC-SHA1": SIGNATURE_HMAC_SHA1}


class QueryKeyAuth(httpx.Auth):
    """``consumer_key``/``consumer_secret`` as query parameters, for hosts that drop Authorization."""

    def __init__(self, key: str, secret: str):
        self._params = {"consumer_key": key, "consumer_secret": secret}

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.url = request.url.copy_merge_params(self._params)
        yield request


class OAuth1Auth(httpx.Auth):
    """One-legged OAuth 1.0a with the signature in the query string, as WooCommerce reads it.

    ``legacy=True`` reproduces how the Legacy REST API plugin (``class-wc-api-authentication.php``)
    checks signatures: the base string names ``get_woocommerce_api_url('')`` plus the route, that is
    the site's own scheme, host and port with ``/wc-api/v3/<path>`` whatever version was called, and
    the HMAC key is the secret without the trailing ``&`` of RFC 5849. A standard signature is refused
    there.
    """

    requires_request_body = True

    def __init__(
        self, key: str, secret: str, method: SignatureMethod = "HMAC-SHA256", *, legacy: bool = False
    ):
        self._key = key
        self._secret = secret
        self._method = method
        self._legacy = legacy

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self._legacy:
            request.url = self._legacy_signed(request)
        else:
            request.url = httpx.URL(self._standard_signed(request))
        yield request

    def _standard_signed(self, request: httpx.Request) -> str:
        client = Client(
            self._key,
            client_secret=self._secret,
            signature_method=_OAUTHLIB_METHODS[self._method],
            signature_type=SIGNATURE_TYPE_QUERY,
        )
        body = request.content.decode() if request.content else None
        headers = {"Content-Type": request.headers["content-type"]} if body else None
        uri, _, _ = client.sign(str(request.url), http_method=request.method, body=body, headers=headers)
        return uri

    def _legacy_signed(self, request: httpx.Request) -> httpx.URL:
        oauth = {
            "oauth_consumer_key": self._key,
            "oauth_nonce": generate_nonce(),
            "oauth_signature_method": self._method,
            "oauth_timestamp": generate_timestamp(),
            "oauth_version": "1.0",
        }
        url = request.url
        params = parse_qsl(url.query.decode(), keep_blank_values=True) + list(oauth.items())
        oauth["oauth_signature"] = legacy_signature(
            request.method, str(url), params, self._secret, self._method
        )
        return url.copy_merge_params(oauth)


def legacy_base_uri(url: str) -> str:
    """``http://host:8080/wc-api/v2/orders`` -> ``http://host:8080/wc-api/v3/orders``: what the legacy
    server signs. Scheme and port are the site's (a default port is left out, as in its home URL)."""
    parts = urlsplit(url)
    path = parts.path
    marker = "/wc-api/"
    if marker in path:
        head, _, rest = path.partition(marker)
        _, _, tail = rest.partition("/")
        path = f"{head}{marker}v3/{tail}"
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    default = {"http": 80, "https": 443}.get(scheme)
    netloc = host if parts.port in (None, default) else f"{host}:{parts.port}"
    return f"{scheme}://{netloc}{path}"


def legacy_signature(
    method: str, url: str, params: list[tuple[str, str]], secret: str, signature_method: SignatureMethod
) -> str:
    """The signature a legacy v1/v2 endpoint accepts (see :class:`OAuth1Auth`)."""
    normalized = signature.normalize_parameters([(k, v) for k, v in params if k != "oauth_signature"])
    base = signature.signature_base_string(method.upper(), legacy_base_uri(url), normalized)
    digest = hmac.new(secret.encode(), base.encode(), _HASHES[signature_method]).digest()
    return base64.b64encode(digest).decode()


def build_auth(
    mode: Literal["basic", "query", "oauth1"],
    key: str,
    secret: str,
    *,
    signature_method: SignatureMethod = "HMAC-SHA256",
    legacy: bool = False,
) -> httpx.Auth:
    if mode == "basic":
        return httpx.BasicAuth(key, secret)
    if mode == "query":
        return QueryKeyAuth(key, secret)
    return OAuth1Auth(key, secret, signature_method, legacy=legacy)
