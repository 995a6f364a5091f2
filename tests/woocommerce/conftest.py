"""Replaying traffic recorded from a real WooCommerce 11.0.1 shop (see ``tests/data/woocommerce/cassettes``).

The cassettes are replayed unchanged with ``record_mode="none"``: a request the recording does not hold
fails instead of reaching the network. Secrets were filtered at recording time; the same filters run on
our requests before matching, so our own keys and OAuth signatures never need to equal the recorded ones.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import vcr
import yaml

from ordersync.config import HttpSettings, WooCommerceShop
from ordersync.http import HttpPolicy
from ordersync.platforms.woocommerce.client import WooCommerceClient, open_client

CASSETTES = Path(__file__).parents[1] / "data" / "woocommerce" / "cassettes"
HTTPS = "https://127.0.0.1:8443"
HTTP = "http://127.0.0.1:8080"
KEY = "ck_test_0123456789abcdef"
SECRET = "cs_test_fedcba9876543210"
OAUTH = [
    "oauth_consumer_key",
    "oauth_nonce",
    "oauth_signature",
    "oauth_signature_method",
    "oauth_timestamp",
    "oauth_version",
    "oauth_body_hash",
    "oauth_token",
    "oauth_callback",
    "oauth_verifier",
]

replay = vcr.VCR(
    cassette_library_dir=str(CASSETTES),
    record_mode="none",
    decode_compressed_response=True,
    filter_headers=["authorization"],
    filter_query_parameters=[(p, "REDACTED") for p in ["consumer_key", "consumer_secret", *OAUTH]],
    match_on=["method", "scheme", "host", "port", "path", "query"],
)


def shop_config(base_url: str = HTTPS, **overrides: Any) -> WooCommerceShop:
    fields: dict[str, Any] = {
        "name": "woo-recorded",
        "platform": "woocommerce",
        "base_url": base_url,
        "consumer_key": KEY,
        "consumer_secret": SECRET,
        "timezone": "Europe/Berlin",
        "currency": "EUR",
        "concurrency": 2,
        **overrides,
    }
    return WooCommerceShop.model_validate(fields)


async def _no_sleep(_: float) -> None:
    return None


@pytest.fixture
def make_client() -> Callable[..., WooCommerceClient]:
    def make(base_url: str = HTTPS, **overrides: Any) -> WooCommerceClient:
        shop = shop_config(base_url, **overrides)
        policy = HttpPolicy(HttpSettings(max_retries=0), shop=shop.name, sleep=_no_sleep)
        return open_client(shop, policy)

    return make


def recorded(cassette: str) -> list[dict[str, Any]]:
    """The cassette's interactions as plain dicts, for reading recorded bodies directly."""
    return yaml.safe_load((CASSETTES / cassette).read_text("utf-8"))["interactions"]


def recorded_json(cassette: str, method: str, path: str) -> Any:
    """The first recorded response body for ``method`` on ``path`` (query ignored)."""
    for interaction in recorded(cassette):
        request = interaction["request"]
        if request["method"] == method and urlsplit(request["uri"]).path == path:
            return json.loads(interaction["response"]["body"]["string"])
    raise KeyError(f"{method} {path} not in {cassette}")
