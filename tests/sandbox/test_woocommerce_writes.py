"""Writes the sandbox WooCommerce shop answers as WooCommerce 11.0.1 was seen to: the traps a writer must
avoid (an unknown product, an unknown legacy status, gateway refunds) and the send_order_details action."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from ordersync.sandbox.woocommerce.app import DEFAULT_CONSUMER_KEY, DEFAULT_CONSUMER_SECRET, create_app
from ordersync.sandbox.woocommerce.store import WooCommerceStore

V3 = "/wp-json/wc/v3"
V2 = "/wc-api/v2"
BILLING = {"first_name": "Ada", "last_name": "Byron", "country": "DE", "email": "ada@example.test"}


@pytest.fixture
def shop() -> tuple[TestClient, WooCommerceStore]:
    store = WooCommerceStore(orders=0, seed=5)
    client = TestClient(create_app(store), base_url="https://shop.test")
    client.auth = httpx.BasicAuth(DEFAULT_CONSUMER_KEY, DEFAULT_CONSUMER_SECRET)
    return client, store


def _order(client: TestClient, **body: Any) -> dict[str, Any]:
    made = client.post(
        f"{V3}/orders",
        json={"payment_method": "bacs", "billing": BILLING, "line_items": [{"product_id": 11}], **body},
    )
    assert made.status_code == 201, made.text
    return made.json()


def test_unknown_product_makes_a_pending_order_with_an_empty_line(shop: Any) -> None:
    client, _ = shop
    for line in ({"product_id": 999}, {"sku": "NO-SUCH"}, {"product_id": 20, "variation_id": 998}):
        order = _order(client, line_items=[{**line, "quantity": 2}])
        (item,) = order["line_items"]
        assert order["status"] == "pending"
        assert (item["product_id"], item["variation_id"], item["name"], item["sku"]) == (0, 0, "", "")
        assert item["quantity"] == 2 and item["total"] == "0.00"
    missing = client.post(f"{V3}/orders", json={"line_items": [{"quantity": 1}]})
    assert missing.status_code == 400
    assert missing.json()["code"] == "woocommerce_rest_required_product_reference"


def test_legacy_create_refuses_an_unknown_product(shop: Any) -> None:
    client, store = shop
    refused = client.post(f"{V2}/orders", json={"order": {"line_items": [{"product_id": 999}]}})
    assert refused.status_code == 400 and store.orders == {}


def test_legacy_put_of_an_unknown_status_makes_the_order_pending(shop: Any) -> None:
    client, store = shop
    order = _order(client, set_paid=True)
    assert order["status"] == "processing"
    answer = client.put(f"{V2}/orders/{order['id']}", json={"order": {"status": "dispatched"}})
    assert answer.status_code == 200 and answer.json()["order"]["status"] == "pending"
    assert store.orders[order["id"]].status == "pending"


def test_v3_put_of_an_unknown_status_is_refused(shop: Any) -> None:
    client, store = shop
    order = _order(client, set_paid=True)
    refused = client.put(f"{V3}/orders/{order['id']}", json={"status": "dispatched"})
    assert refused.status_code == 400
    body = refused.json()
    assert body["code"] == "rest_invalid_param" and "status" in body["data"]["params"]
    assert body["data"]["details"]["status"]["code"] == "rest_not_in_enum"
    assert store.orders[order["id"]].status == "processing"


def test_refunds_go_to_the_gateway_by_default_and_offline_gateways_fail(shop: Any) -> None:
    client, store = shop
    order = _order(client, set_paid=True)
    for gateway_default in ({"amount": "1.00"}, {"amount": "1.00", "api_refund": True}):
        failed = client.post(f"{V3}/orders/{order['id']}/refunds", json=gateway_default)
        assert failed.status_code == 500
        assert failed.json()["code"] == "woocommerce_rest_cannot_create_order_refund"
    too_much = client.post(
        f"{V3}/orders/{order['id']}/refunds", json={"amount": "100000.00", "api_refund": False}
    )
    assert too_much.status_code == 500
    assert too_much.json()["code"] == "woocommerce_rest_cannot_create_order_refund"
    assert store.orders[order["id"]].refunds == []
    legacy = client.post(f"{V2}/orders/{order['id']}/refunds", json={"order_refund": {"amount": "1.00"}})
    assert legacy.status_code == 500


def test_refund_meta_data_is_kept(shop: Any) -> None:
    client, _ = shop
    order = _order(client, set_paid=True)
    made = client.post(
        f"{V3}/orders/{order['id']}/refunds",
        json={
            "amount": "1.00",
            "api_refund": False,
            "meta_data": [{"key": "_ordersync_marker", "value": "m"}],
        },
    )
    assert made.status_code == 201
    assert [(m["key"], m["value"]) for m in made.json()["meta_data"]][1:] == [("_ordersync_marker", "m")]


def test_legacy_order_meta_only_visible_keys(shop: Any) -> None:
    client, _ = shop
    made = client.post(
        f"{V2}/orders",
        json={
            "order": {
                "line_items": [{"product_id": 11, "quantity": 1}],
                "order_meta": {"ordersync_marker": "m1", "_hidden": "no"},
            }
        },
    )
    assert made.status_code == 201
    oid = made.json()["order"]["id"]
    shown = client.get(f"{V2}/orders/{oid}", params={"filter[meta]": "true"}).json()["order"]
    assert shown["order_meta"] == {"ordersync_marker": "m1"}
    assert "order_meta" not in client.get(f"{V2}/orders/{oid}").json()["order"]
    products = client.get(f"{V2}/products", params={"filter[sku]": "TSHIRT-L"}).json()["products"]
    assert [(p["id"], p["parent_id"]) for p in products] == [(23, 20)]


def test_send_order_details(shop: Any) -> None:
    client, store = shop
    order = _order(client)
    sent = client.post(f"{V3}/orders/{order['id']}/actions/send_order_details", json={})
    assert sent.status_code == 200
    assert sent.json() == {"message": "Order details sent to ada@example.test, via REST API."}
    assert [(e["order_id"], e["to"], e["template"]) for e in store.sent_emails] == [
        (order["id"], "ada@example.test", "customer_invoice")
    ]
    other = client.post(
        f"{V3}/orders/{order['id']}/actions/send_order_details", json={"email": "x@example.test"}
    )
    assert other.status_code == 400 and len(store.sent_emails) == 1
    forced = client.post(
        f"{V3}/orders/{order['id']}/actions/send_order_details",
        json={"email": "x@example.test", "force_email_update": True},
    )
    assert forced.json()["message"].startswith("Billing email updated to x@example.test.")
    no_email = _order(client, billing={"first_name": "Nobody", "country": "DE"})
    missing = client.post(f"{V3}/orders/{no_email['id']}/actions/send_order_details", json={})
    assert missing.status_code == 400 and missing.json()["code"] == "woocommerce_rest_missing_email"
    assert client.post(f"{V3}/orders/999999/actions/send_order_details", json={}).status_code == 404
