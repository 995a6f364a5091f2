"""The three ways WooCommerce takes a key, checked from the server's side of the signature."""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import parse_qsl, quote, urlsplit

import httpx
import pytest
from oauthlib.common import Request as OAuthRequest
from oauthlib.oauth1.rfc5849 import signature

from ordersync.config import WooCommerceShop
from ordersync.errors import ConfigError
from ordersync.platforms.woocommerce.auth import OAuth1Auth, QueryKeyAuth, legacy_base_uri

KEY, SECRET = "ck_abc", "cs_s3cr3t"


def signed(auth: httpx.Auth, request: httpx.Request) -> httpx.Request:
    flow = auth.sync_auth_flow(request)
    return next(flow)


def test_query_keys_are_added_to_the_query() -> None:
    request = signed(
        QueryKeyAuth(KEY, SECRET), httpx.Request("GET", "https://shop.test/wp-json/wc/v3/orders?page=2")
    )
    assert dict(request.url.params) == {"page": "2", "consumer_key": KEY, "consumer_secret": SECRET}


@pytest.mark.parametrize(
    ("method", "verify"),
    [("HMAC-SHA256", signature.verify_hmac_sha256), ("HMAC-SHA1", signature.verify_hmac_sha1)],
)
def test_standard_oauth_signature_verifies_as_rfc5849(method: str, verify) -> None:  # type: ignore[no-untyped-def]
    request = signed(
        OAuth1Auth(KEY, SECRET, method),  # type: ignore[arg-type]
        httpx.Request("GET", "http://shop.test:8080/wp-json/wc/v3/orders?per_page=5&status=any"),
    )
    params = dict(request.url.params)
    assert params["oauth_signature_method"] == method and params["oauth_consumer_key"] == KEY
    server_view = OAuthRequest(str(request.url), http_method="GET")
    # A server collects the parameters without the signature itself (oauthlib's collect_parameters).
    server_view.params = [(k, v) for k, v in request.url.params.multi_items() if k != "oauth_signature"]
    server_view.signature = params["oauth_signature"]
    assert verify(server_view, SECRET)
    assert not verify(server_view, SECRET + "x")


def test_each_send_gets_a_fresh_nonce() -> None:
    auth = OAuth1Auth(KEY, SECRET)
    first = signed(auth, httpx.Request("GET", "http://shop.test/wp-json/wc/v3/orders"))
    second = signed(auth, httpx.Request("GET", "http://shop.test/wp-json/wc/v3/orders"))
    assert first.url.params["oauth_nonce"] != second.url.params["oauth_nonce"]


def test_json_body_gets_a_body_hash() -> None:
    body = b'{"note": "x", "customer_note": false}'
    request = signed(
        OAuth1Auth(KEY, SECRET),
        httpx.Request(
            "POST",
            "http://shop.test/wp-json/wc/v3/orders/1/notes",
            content=body,
            headers={"content-type": "application/json"},
        ),
    )
    expected = base64.b64encode(hashlib.sha1(body).digest()).decode()
    assert request.url.params["oauth_body_hash"] == expected


@pytest.mark.parametrize(
    ("url", "base"),
    [
        ("http://127.0.0.1:8080/wc-api/v2/orders", "http://127.0.0.1:8080/wc-api/v3/orders"),
        ("http://Shop.Example:80/wc-api/v2/orders/5", "http://shop.example/wc-api/v3/orders/5"),
        ("https://shop.example:8443/wp/wc-api/v2/orders", "https://shop.example:8443/wp/wc-api/v3/orders"),
    ],
)
def test_the_legacy_base_uri_keeps_the_sites_scheme_host_and_port(url: str, base: str) -> None:
    assert legacy_base_uri(url) == base


def test_legacy_signature_is_over_the_v3_uri_with_the_port_and_the_bare_secret() -> None:
    url = "http://127.0.0.1:8080/wc-api/v2/orders?filter%5Blimit%5D=5&page=2"
    assert legacy_base_uri(url) == "http://127.0.0.1:8080/wc-api/v3/orders"
    request = signed(OAuth1Auth(KEY, SECRET, legacy=True), httpx.Request("GET", url))
    params = parse_qsl(urlsplit(str(request.url)).query)
    given = dict(params)["oauth_signature"]
    # Rebuilt by hand from the rules the legacy server applies (not through our helper).
    pairs = sorted((quote(k, safe="~"), quote(v, safe="~")) for k, v in params if k != "oauth_signature")
    normalized = "&".join(f"{k}={v}" for k, v in pairs)
    base = "&".join(
        ["GET", quote("http://127.0.0.1:8080/wc-api/v3/orders", safe="~"), quote(normalized, safe="~")]
    )
    expected = base64.b64encode(hmac.new(SECRET.encode(), base.encode(), hashlib.sha256).digest()).decode()
    assert given == expected
    assert dict(params)["filter[limit]"] == "5"


def test_basic_or_query_keys_over_plain_http_are_refused_by_the_config() -> None:
    from ordersync.config import parse_settings

    shop = {
        "name": "w",
        "platform": "woocommerce",
        "base_url": "http://shop.test",
        "consumer_key": KEY,
        "consumer_secret": SECRET,
        "auth": "basic",
    }
    with pytest.raises(ConfigError, match="needs an https:// base_url") as caught:
        parse_settings({"shops": [shop]})
    assert SECRET not in str(caught.value)
    auto_http = WooCommerceShop.model_validate({**shop, "auth": "auto"})
    auto_https = WooCommerceShop.model_validate({**shop, "auth": "auto", "base_url": "https://shop.test"})
    assert (auto_http.auth_mode, auto_https.auth_mode) == ("oauth1", "basic")


def test_a_missing_or_broken_ca_bundle_is_a_clear_config_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from ordersync.config import HttpSettings, parse_settings
    from ordersync.http import HttpPolicy
    from ordersync.platforms.woocommerce.client import open_client

    shop = {
        "name": "w",
        "platform": "woocommerce",
        "base_url": "https://shop.test",
        "consumer_key": KEY,
        "consumer_secret": SECRET,
        "verify_tls": str(tmp_path / "nope.pem"),
    }
    with pytest.raises(ConfigError, match="no CA bundle file at") as missing:
        parse_settings({"shops": [shop]})
    assert "verify_tls" in str(missing.value)
    broken = tmp_path / "broken.pem"
    broken.write_text("not a certificate")
    settings = parse_settings({"shops": [{**shop, "verify_tls": str(broken)}]})
    with pytest.raises(ConfigError, match="shop 'w': cannot load the CA bundle") as caught:
        open_client(settings.shops[0], HttpPolicy(HttpSettings(), shop="w"))
    assert SECRET not in str(caught.value)
