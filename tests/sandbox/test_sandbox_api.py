"""The sandbox WebCommander shop keeps to the document: envelopes, auth, pagination, money, writes."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from ordersync.sandbox.faults import Fault, FaultConfig
from ordersync.sandbox.webcommander.app import DEFAULT_TOKEN, DEFAULT_UUID, create_app
from ordersync.sandbox.webcommander.generator import generate_orders
from ordersync.sandbox.webcommander.store import WebCommanderStore

DATA = Path(__file__).parents[1] / "data" / "webcommander"
AUTH = {"uuid": DEFAULT_UUID, "accessToken": DEFAULT_TOKEN}
P = "/external/app/access"


def example(name: str) -> dict[str, Any]:
    return json.loads((DATA / name).read_bytes())


def call(app: Any, *requests: tuple[str, str, dict[str, Any]]) -> list[httpx.Response]:
    async def go() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://wc.test") as client:
            return [await client.request(method, url, **kw) for method, url, kw in requests]

    return asyncio.run(go())


def get(app: Any, url: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return call(app, ("GET", url, {"headers": AUTH if headers is None else headers}))[0]


def post(app: Any, url: str, body: Any) -> httpx.Response:
    return call(app, ("POST", url, {"headers": AUTH, "json": body}))[0]


@pytest.fixture
def store() -> WebCommanderStore:
    return WebCommanderStore(orders=60, seed=5)


def test_list_envelope_and_order_keys_match_the_document(store: WebCommanderStore) -> None:
    app = create_app(store)
    body = get(app, f"{P}/orders?max=5&offset=0").json()
    doc = example("external_orders_list.json")
    assert set(body) == set(doc) == {"status", "total", "max", "offset", "orders"}
    assert (body["status"], body["total"], body["max"], body["offset"]) == ("success", 60, "5", "0")
    doc_order = doc["orders"][0]
    for order in store.orders():
        assert set(order) == set(doc_order)
        for item in order["items"]:
            assert set(doc_order["items"][0]) <= set(item)
    single = get(app, f"{P}/order?id=3").json()
    assert set(single) == {"order"}
    doc_single = example("external_order_single.json")["order"]
    assert set(single["order"]["billing"]["country"]) == set(doc_single["billing"]["country"])
    assert set(single["order"]["billing"]["state"]) == set(doc_single["billing"]["state"])
    assert isinstance(body["orders"][0]["billing"]["country"], int)


def test_pagination_windows_cover_every_order_once(store: WebCommanderStore) -> None:
    app = create_app(store)
    seen = []
    for offset in range(0, 60, 7):
        seen += [o["id"] for o in get(app, f"{P}/orders?max=7&offset={offset}").json()["orders"]]
    assert seen == store.listed_ids() == sorted(seen, reverse=True)  # newest first by default
    assert len(get(app, f"{P}/orders?max=-1&offset=10").json()["orders"]) == 50
    past = get(app, f"{P}/orders?max=10&offset=500").json()
    assert past["orders"] == [] and past["total"] == 60
    for bad in ("max=abc", "max=0", "offset=-1"):
        response = get(app, f"{P}/orders?{bad}")
        assert response.status_code == 400 and response.json()["status"] == "error"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"uuid": DEFAULT_UUID},
        {"accessToken": DEFAULT_TOKEN},
        {**AUTH, "accessToken": "nope"},
        {**AUTH, "uuid": "X"},
    ],
)
def test_missing_or_wrong_credentials_are_refused(store: WebCommanderStore, headers: dict[str, str]) -> None:
    response = get(create_app(store), f"{P}/orders", headers=headers)
    assert response.status_code == 401
    assert response.json() == {"status": "error", "message": "Invalid uuid or accessToken"}


def test_generated_money_adds_up() -> None:
    orders = list(generate_orders(400, seed=9)) + list(generate_orders(30, seed=3, realistic=True))
    for order in orders:
        s = {k: Decimal(v) for k, v in order["orderSummary"].items()}
        items = order["items"]
        assert s["subTotal"] == sum(Decimal(str(i["price"])) * i["quantity"] for i in items)
        tax = (
            sum(Decimal(str(i["tax"])) for i in items)
            + Decimal(str(order["shippingTax"]))
            + Decimal(str(order["handlingTax"]))
        )
        assert s["totalTax"] == tax
        assert s["grandTotal"] == (
            s["subTotal"]
            + Decimal(str(order["shippingCost"]))
            + s["handlingCost"]
            + s["totalSurcharge"]
            - s["totalDiscount"]
            + s["totalTax"]
        )
        received = sum(
            Decimal(str(p["amount"]))
            for p in order["payments"]
            if p["refundId"] is None and p["status"] in ("success", "paid", "completed", "refunded")
        )
        refunded = sum(Decimal(str(p["amount"])) for p in order["payments"] if p["refundId"] is not None)
        assert s["paid"] == received - refunded and s["due"] == s["grandTotal"] - s["paid"]
        assert all(len(v.split(".")[1]) == 2 for v in order["orderSummary"].values())
    realistic = orders[400:]
    assert all(8 <= len(o["items"]) <= 12 for o in realistic)
    assert any(p["refundId"] is not None for o in orders for p in o["payments"])


def test_document_quirks_appear_in_the_generated_shop(store: WebCommanderStore) -> None:
    orders = list(generate_orders(300, seed=1))
    assert any(": " in o["created"] for o in orders) and any(": " not in o["created"] for o in orders)
    assert any(isinstance(o["customerId"], str) for o in orders)
    assert any(o["customerId"] is None for o in orders)
    assert any(i["variations"] is None for o in orders for i in o["items"])
    raw = get(create_app(store), f"{P}/orders?max=-1").content
    assert b"\\u0040" in raw and b"\\u002f" in raw
    assert orjson.loads(raw)["total"] == 60


def test_writes_change_the_shop_and_bump_updated(store: WebCommanderStore) -> None:
    app = create_app(store)
    before = store.get(4)
    assert post(app, f"{P}/change-order-Status", {"id": "4", "status": "completed"}).json() == {
        "status": "success"
    }
    assert store.get(4)["orderStatus"] == "completed" and store.get(4)["updated"] != before["updated"]
    assert post(app, f"{P}/change-order-Status", {"id": 4, "status": "shipped"}).status_code == 400
    assert post(app, f"{P}/change-order-Status", {"id": 999, "status": "completed"}).status_code == 404

    comment = post(app, f"{P}/order-comment-add", {"orderId": "4", "message": "quick deliver"}).json()
    assert comment["status"] == "success"
    assert [c["content"] for c in store.get(4)["orderComment"] if c["id"] == comment["id"]] == [
        "quick deliver"
    ]

    paid_before = Decimal(store.get(4)["orderSummary"]["paid"])
    made = post(
        app,
        f"{P}/make-order-payment",
        {
            "orderId": "4",
            "paymentGateway": "PIS",
            "date": "2023-02-01 20:38:17",
            "amount": "5",
            "isNotify": "false",
        },
    )
    assert made.status_code == 200
    assert Decimal(store.get(4)["orderSummary"]["paid"]) == paid_before + 5
    refund = post(app, f"{P}/order-payment-refund", {"id": str(made.json()["id"]), "amount": "2"})
    assert refund.json() == {"status": "success", "haveToReAdjustInvetory": False, "id": made.json()["id"]}
    entries = [p for p in store.get(4)["payments"] if p["refundId"] == made.json()["id"]]
    assert [Decimal(str(p["amount"])) for p in entries] == [Decimal(2)]
    assert Decimal(store.get(4)["orderSummary"]["paid"]) == paid_before + 3
    assert (
        post(app, f"{P}/order-payment-refund", {"id": made.json()["id"], "amount": "3.01"}).status_code == 400
    )
    post(app, f"{P}/order-payment-refund", {"id": made.json()["id"], "amount": "3"})
    original = next(p for p in store.get(4)["payments"] if p["id"] == made.json()["id"])
    assert original["status"] == "refunded"
    assert post(app, f"{P}/change-order-payment-status", {"id": "4", "status": "paid"}).status_code == 400
    assert (
        post(app, f"{P}/change-order-payment-status", {"id": "4", "status": "completed"}).status_code == 200
    )
    assert store.get(4)["paymentStatus"] == "completed"


def test_order_create_with_the_documents_request(store: WebCommanderStore) -> None:
    app = create_app(store)
    body = post(app, f"{P}/order-create", example("external_order_create_request.json")).json()
    doc = example("external_order_create_response.json")
    assert set(body) == set(doc) and body["status"] == "success" and body["paymentData"] == {}
    assert set(body["order"]) == set(doc["order"])
    (item,) = body["order"]["items"]
    assert (item["price"], item["tax"], body["order"]["orderSummary"]["grandTotal"]) == (
        605.45,
        60.55,
        "666.00",
    )
    assert body["order"]["id"] in [o["id"] for o in store.orders()]
    gateways = get(app, f"{P}/payment-gateways?max=-1&offset=0").json()
    assert gateways["paymentGatewayList"][0]["code"] == "PIS"
    update = post(app, f"{P}/update-payment-gateway", {"id": 1, "isEnabled": "false"})
    assert update.json() == {"status": "success", "message": "Successfully Updated"}
    assert store.gateways[0]["isEnabled"] is False


def test_same_seed_same_bytes() -> None:
    a = get(create_app(WebCommanderStore(orders=30, seed=8)), f"{P}/orders?max=10").content
    b = get(create_app(WebCommanderStore(orders=30, seed=8)), f"{P}/orders?max=10").content
    c = get(create_app(WebCommanderStore(orders=30, seed=9)), f"{P}/orders?max=10").content
    assert a == b != c


def test_scripted_and_random_faults(store: WebCommanderStore) -> None:
    app = create_app(store)
    app.script("orders", [Fault.server_error(503), Fault.rate_limited(2), Fault.html()])
    first, second, third, fourth = call(app, *[("GET", f"{P}/orders", {"headers": AUTH})] * 4)
    assert first.status_code == 503
    assert second.status_code == 429 and second.headers["retry-after"] == "2"
    assert third.status_code == 502 and "text/html" in third.headers["content-type"]
    assert fourth.status_code == 200
    assert app.total_requests("/orders") == 4
    always = create_app(store, faults=FaultConfig(rate_5xx=1.0))
    assert {r.status_code for r in call(always, *[("GET", f"{P}/orders", {"headers": AUTH})] * 3)} == {503}
    app.script("orders", [Fault.bad_json()])
    with pytest.raises(json.JSONDecodeError):
        json.loads(get(app, f"{P}/orders").content)
