"""Write-back end to end: both sandbox shops as real loopback servers, routes between them, the
outbox in a SQLite state store and the DuckDB mirror on disk."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from ordersync.cli import app
from ordersync.config import parse_settings
from ordersync.sandbox.faults import Fault
from ordersync.state import links as state_links
from ordersync.state import outbox
from ordersync.state.store import StateStore
from tests.e2e.writeback_shops import Shops, serve_shops


@pytest.fixture
def shops(tmp_path: Path) -> Iterator[Shops]:
    yield from serve_shops(tmp_path)


@pytest.fixture
def state(shops: Shops) -> Iterator[StateStore]:
    store = shops.store()
    shops.cycle(store)  # the first run: backfill both shops; routes start now, old orders stay put
    yield store
    store.dispose()


def _link(store: StateStore, woo_id: int) -> str:
    with store.engine.connect() as connection:
        target = state_links.counterpart(connection, "woo", str(woo_id), "wc")
    assert target is not None, f"woo order {woo_id} is not linked to a wc order"
    return target


def _replicated(shops: Shops, store: StateStore, skus: list[str] | None = None) -> tuple[int, str]:
    woo_id = shops.new_woo_order(skus or ["SKU-001", "TSHIRT-S"])
    shops.cycle(store)
    return woo_id, _link(store, woo_id)


def test_the_first_run_replicates_nothing_old(shops: Shops, state: StateStore) -> None:
    assert outbox.rows(state) == []
    assert shops.wc.count == 12


def test_a_new_woocommerce_order_appears_in_webcommander_mapped_by_sku_and_linked(
    shops: Shops, state: StateStore
) -> None:
    woo_id, wc_id = _replicated(shops, state)
    wc_order = shops.wc.get(wc_id)
    assert [(i["productId"], i["quantity"]) for i in wc_order["items"]] == [(495, 2), (510, 2)]
    assert wc_order["billing"]["email"] == "erika@example.com"
    # The source was paid and processing: the copy gets its payment and status after it is created.
    assert wc_order["orderStatus"] == "processing"
    paid = [p for p in wc_order["payments"] if p["status"] == "success"]
    assert len(paid) == 1
    assert Decimal(str(paid[0]["amount"])) == Decimal(str(shops.woo.get(woo_id).total))
    (create,) = [r for r in outbox.rows(state) if r.kind == "create_order"]
    assert "order" not in create.payload  # the customer's order is not kept in the outbox once made
    # A later run neither replicates it again nor sends anything back.
    before = len(outbox.rows(state))
    shops.cycle(state)
    shops.cycle(state)
    assert len(outbox.rows(state)) == before
    assert shops.wc.count == 13
    with duckdb.connect(str(shops.tmp_path / "mirror.duckdb"), read_only=True) as con:
        rows = con.sql(
            "SELECT source_shop, source_order_id, target_shop, target_order_id, target_status"
            " FROM v_order_links"
        ).fetchall()
        assert rows == [("woo", str(woo_id), "wc", wc_id, "processing")]
        outcomes = con.sql("SELECT kind, status FROM v_sync_operations ORDER BY id").fetchall()
        assert ("create_order", "done") in outcomes and all(s == "done" for _, s in outcomes)


def test_a_status_change_in_webcommander_reaches_woocommerce_and_is_not_echoed(
    shops: Shops, state: StateStore
) -> None:
    woo_id, wc_id = _replicated(shops, state)
    shops.wc.set_status(wc_id, "completed")
    shops.cycle(state)
    assert shops.woo.get(woo_id).status == "completed"
    to_wc = [r for r in outbox.rows(state, shop="wc") if r.kind == "set_status"]
    shops.cycle(state)
    shops.cycle(state)
    # WooCommerce now says completed, because ordersync wrote it: nothing goes back to WebCommander.
    assert [r for r in outbox.rows(state, shop="wc") if r.kind == "set_status"] == to_wc
    assert shops.wc.get(wc_id)["orderStatus"] == "completed"


def test_a_replica_changed_by_its_customer_before_the_connector_read_it_back_still_routes_the_change(
    shops: Shops, state: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The replica's baseline is what the shop answered to its creation: a change made before the
    connector's read-back (a customer a second later, or while the process was down) is a change."""
    from ordersync.platforms.webcommander.writer import WebCommanderWriter

    read_back = WebCommanderWriter.fetch
    changed: list[str] = []

    async def customer_first(self: WebCommanderWriter, order_id: str):  # type: ignore[no-untyped-def]
        if not changed:
            changed.append(order_id)
            shops.wc.set_status(order_id, "completed")
        return await read_back(self, order_id)

    monkeypatch.setattr(WebCommanderWriter, "fetch", customer_first)
    woo_id = shops.new_woo_order(["SKU-001"])
    shops.cycle(state)
    wc_id = _link(state, woo_id)
    assert changed == [wc_id]
    monkeypatch.setattr(WebCommanderWriter, "fetch", read_back)
    shops.cycle(state)
    shops.cycle(state)
    # The customer's change was the later one: it stays, and reaches the source.
    assert shops.wc.get(wc_id)["orderStatus"] == "completed"
    assert shops.woo.get(woo_id).status == "completed"


def test_comments_flow_both_ways_with_their_visibility(shops: Shops, state: StateStore) -> None:
    woo_id, wc_id = _replicated(shops, state)
    shops.woo.add_note(woo_id, "Please leave it at the door", customer_note=True, author="Kim")
    shops.woo.add_note(woo_id, "Customer called twice", customer_note=False, author="Kim")
    shops.wc.add_comment(wc_id, "Packed by Sam")
    shops.cycle(state)
    comments = {c["content"]: c["isVisibleToCustomer"] for c in shops.wc.get(wc_id)["orderComment"]}
    assert comments["Please leave it at the door"] is True
    assert comments["Customer called twice"] is False
    notes = {n.text: n.customer_note for n in shops.woo.get(woo_id).notes}
    assert notes["Packed by Sam"] is False
    # WooCommerce's own notes (status changes, emails) are its bookkeeping, not comments to copy.
    assert not [c for c in comments if "status changed" in c.lower() or "email" in c.lower()], comments
    # Each comment exists once on each side, however often the shops sync.
    shops.cycle(state)
    shops.cycle(state)
    wc_texts = [c["content"] for c in shops.wc.get(wc_id)["orderComment"]]
    woo_texts = [n.text for n in shops.woo.get(woo_id).notes]
    for text in ("Please leave it at the door", "Customer called twice", "Packed by Sam"):
        assert wc_texts.count(text) == 1, wc_texts
        assert woo_texts.count(text) == 1, woo_texts


def test_a_partial_refund_in_woocommerce_becomes_exactly_one_refund_in_webcommander(
    shops: Shops, state: StateStore
) -> None:
    woo_id, wc_id = _replicated(shops, state)
    shops.woo.create_refund(woo_id, {"amount": "7.50", "reason": "Damaged mug", "api_refund": False})
    shops.cycle(state)
    refunds = shops.wc_refunds(wc_id)
    assert [Decimal(str(r["amount"])) for r in refunds] == [Decimal("7.50")]
    shops.cycle(state)
    assert len(shops.wc_refunds(wc_id)) == 1
    assert len(shops.woo.get(woo_id).refunds) == 1  # and nothing came back


def test_an_unknown_sku_dead_letters_the_replication_and_creates_nothing(
    shops: Shops, state: StateStore
) -> None:
    woo_id = shops.new_woo_order(["SKU-001", "SKU-007"])  # SKU-007 is not in the route's map
    shops.cycle(state)
    (row,) = [r for r in outbox.rows(state) if r.kind == "create_order"]
    assert row.status == outbox.DEAD
    assert "SKU-007" in (row.last_error or "")
    assert shops.wc.count == 12
    with state.engine.connect() as connection:
        assert state_links.counterpart(connection, "woo", str(woo_id), "wc") is None


def test_5xx_and_429_are_retried_then_dead_lettered_and_outbox_retry_completes_them(
    shops: Shops, state: StateStore
) -> None:
    woo_id, wc_id = _replicated(shops, state)
    faults = [Fault.server_error(503), Fault.rate_limited(retry_after=0), Fault.server_error(502)]
    shops.wc_app.script("order-comment-add", faults)
    shops.woo.add_note(woo_id, "Gift wrap, please", customer_note=False, author="Kim")
    shops.cycle(state)
    (row,) = [r for r in outbox.rows(state, shop="wc") if r.kind == "add_comment"]
    assert row.status == outbox.DEAD and row.attempts == 3
    assert "gave up after 3 attempts" in (row.last_error or "") and "HTTP 502" in (row.last_error or "")
    assert shops.wc_app.total_requests("order-comment-add") == 3
    assert "Gift wrap, please" not in [c["content"] for c in shops.wc.get(wc_id)["orderComment"]]

    status = CliRunner().invoke(app, ["status", "--json", "--config", str(shops.write_config())])
    wc_status = next(s for s in json.loads(status.stdout)["shops"] if s["shop"] == "wc")
    assert (wc_status["outbox_pending"], wc_status["outbox_dead"]) == (0, 1), wc_status

    result = CliRunner().invoke(app, ["outbox", "retry", "--config", str(shops.write_config())])
    assert result.exit_code == 0, result.output
    (row,) = [r for r in outbox.rows(state, shop="wc") if r.kind == "add_comment"]
    assert row.status == outbox.DONE
    texts = [c["content"] for c in shops.wc.get(wc_id)["orderComment"]]
    assert texts.count("Gift wrap, please") == 1


def test_both_shops_changing_a_status_at_once_end_as_the_policy_says(tmp_path: Path) -> None:
    for policy, winner in (("woo", "completed"), ("wc", "pending")):
        (tmp_path / policy).mkdir()
        gen = serve_shops(tmp_path / policy)
        shops = next(gen)
        try:
            shops.conflicts = {"status": policy}
            store = shops.store()
            shops.cycle(store)
            woo_id, wc_id = _replicated(shops, store)
            order = shops.woo.get(woo_id)
            shops.woo.set_status(order, "completed")
            shops.wc.set_status(wc_id, "pending")
            shops.cycle(store)
            shops.cycle(store)
            assert shops.woo.get(woo_id).status == winner, policy
            assert shops.wc.get(wc_id)["orderStatus"] == winner, policy
            with store.engine.connect() as connection:
                (conflict,) = state_links.all_conflicts(connection)
            assert conflict["winner_shop"] == policy and conflict["field"] == "status"
            store.dispose()
        finally:
            gen.close()


def test_status_changes_for_woocommerce_go_out_in_one_batch_request(shops: Shops, state: StateStore) -> None:
    from ordersync.operations import SetStatus
    from ordersync.writeback.drain import Drainer
    from ordersync.writeback.service import open_writers

    targets = [o for o in shops.woo.order_ids() if shops.woo.get(o).status != "cancelled"][:4]
    with state.engine.begin() as connection:
        for order_id in targets:
            op = SetStatus(order_id=str(order_id), value="cancelled")
            outbox.enqueue(connection, key=f"test/{order_id}", shop="woo", op=op, origin="manual")
    before = shops.woo_app.total_requests("orders/batch")

    async def drain() -> object:
        async with open_writers(shops.settings()) as writers:
            return await Drainer(shops.settings(), state, writers).drain()

    import asyncio

    stats = asyncio.run(drain())
    assert shops.woo_app.total_requests("orders/batch") == before + 1
    assert [shops.woo.get(o).status for o in targets] == ["cancelled"] * len(targets)
    assert stats.done == len(targets)  # type: ignore[attr-defined]


def test_push_refund_applies_once_per_key_and_refuses_more_than_remains(
    shops: Shops, state: StateStore
) -> None:
    woo_id, _ = _replicated(shops, state)
    config = str(shops.write_config())
    total = shops.woo.get(woo_id).total
    runner = CliRunner()
    args = [
        "push",
        "refund",
        "--shop",
        "woo",
        "--order",
        str(woo_id),
        "--amount",
        "3.20",
        "--key",
        "ticket-77",
    ]
    first = runner.invoke(app, [*args, "--config", config])
    again = runner.invoke(app, [*args, "--config", config])
    assert first.exit_code == 0 and again.exit_code == 0, first.output + again.output
    assert "applied" in first.output
    refunds = shops.woo.get(woo_id).refunds
    assert [r.amount for r in refunds] == [Decimal("3.20")]
    # The marker a resend after a crash looks for is in the refund's meta, not in the reason.
    assert "ordersync-" not in refunds[0].reason
    assert any(k == "_ordersync_marker" and str(v).startswith("ordersync-") for _, k, v in refunds[0].meta)

    too_much = runner.invoke(
        app,
        [
            "push",
            "refund",
            "--shop",
            "woo",
            "--order",
            str(woo_id),
            "--amount",
            str(total),
            "--config",
            config,
        ],
    )
    assert too_much.exit_code == 1
    assert "left to refund" in too_much.output, too_much.output
    assert len(shops.woo.get(woo_id).refunds) == 1

    listed = runner.invoke(app, ["outbox", "list", "--status", "dead", "--json", "--config", config])
    (dead,) = json.loads(listed.stdout)
    assert dead["kind"] == "create_refund" and dead["shop"] == "woo"
    dropped = runner.invoke(app, ["outbox", "drop", str(dead["id"]), "--config", config])
    assert dropped.exit_code == 0, dropped.output
    assert [r.status for r in outbox.rows(state, ids=[dead["id"]])] == [outbox.DROPPED]


def test_an_older_status_change_failing_for_now_never_lands_after_a_newer_one(
    shops: Shops, state: StateStore
) -> None:
    shops.outbox = {"max_attempts": 5, "backoff_base": 3600}  # a failed write waits an hour
    woo_id, wc_id = _replicated(shops, state)
    shops.wc.set_status(wc_id, "pending")
    shops.sync(state)
    shops.woo_app.script(f"/orders/{woo_id}", [Fault.server_error(503)] * 3)  # the target read fails
    shops.write_back(state)
    (older,) = [r for r in outbox.rows(state, shop="woo") if r.kind == "set_status"]
    assert older.status == outbox.PENDING and older.attempts == 1
    shops.wc.set_status(wc_id, "completed")
    shops.cycle(state)
    shops.cycle(state)
    assert shops.woo.get(woo_id).status == "completed"
    statuses = {r.op.value: r.status for r in outbox.rows(state, shop="woo") if r.kind == "set_status"}  # type: ignore[union-attr]
    assert statuses == {"pending": outbox.SUPERSEDED, "completed": outbox.DONE}


def test_a_zero_refund_is_skipped_and_the_rest_still_flows(shops: Shops, state: StateStore) -> None:
    woo_id, wc_id = _replicated(shops, state)
    shops.woo.create_refund(woo_id, {"amount": "0", "reason": "restock only", "api_refund": False})
    shops.woo.add_note(woo_id, "Restocked the mug", author="Kim")
    stats = shops.cycle(state)
    assert stats.routed["woo"].skipped >= 1 and not stats.errors
    assert "Restocked the mug" in [c["content"] for c in shops.wc.get(wc_id)["orderComment"]]
    assert shops.wc_refunds(wc_id) == []


def test_the_daemon_routes_and_drains_while_it_runs(shops: Shops, state: StateStore) -> None:
    """`ordersync run`: a change made while the daemon runs reaches the other shop, without a command."""
    import asyncio
    import os
    import signal

    from ordersync import daemon

    woo_id, wc_id = _replicated(shops, state)
    config = shops.config()
    for shop in config["shops"]:
        shop["schedule"] = {"interval": 0.5}
    config["sync"]["outbox"]["interval"] = 0.5
    settings = parse_settings(config)

    async def main() -> None:
        task = asyncio.create_task(daemon.run_daemon(settings))
        await asyncio.sleep(1.5)
        shops.wc.set_status(wc_id, "completed")
        shops.wc.add_comment(wc_id, "Handed to the courier")
        for _ in range(100):
            await asyncio.sleep(0.2)
            notes = [n.text for n in shops.woo.get(woo_id).notes]
            if shops.woo.get(woo_id).status == "completed" and "Handed to the courier" in notes:
                break
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(task, 10)

    asyncio.run(main())
    assert shops.woo.get(woo_id).status == "completed"
    assert [n.text for n in shops.woo.get(woo_id).notes].count("Handed to the courier") == 1


def test_a_payment_and_a_refund_seen_in_one_sync_are_applied_in_that_order(
    shops: Shops, state: StateStore
) -> None:
    woo_id = shops.new_woo_order(["SKU-002"], paid=False)
    shops.cycle(state)
    wc_id = _link(state, woo_id)
    assert shops.wc.get(wc_id)["paymentStatus"] == "unpaid"
    shops.woo.update_order(woo_id, {"set_paid": True, "status": "processing"})
    shops.woo.create_refund(woo_id, {"amount": "4.00", "reason": "late delivery", "api_refund": False})
    shops.cycle(state)
    assert [Decimal(str(r["amount"])) for r in shops.wc_refunds(wc_id)] == [Decimal("4.00")]
    assert not [r for r in outbox.rows(state) if r.status == outbox.DEAD], [
        (r.kind, r.last_error) for r in outbox.rows(state) if r.status == outbox.DEAD
    ]


class _Overlap:
    """In front of the WebCommander sandbox: holds each comment request a moment and counts how many
    are in flight together."""

    def __init__(self) -> None:
        self.app: object = None
        self.now = 0
        self.most = 0

    def wrap(self, app: object) -> _Overlap:
        self.app = app
        return self

    async def __call__(self, scope: dict, receive: object, send: object) -> None:  # type: ignore[type-arg]
        import asyncio

        if scope["type"] != "http" or "order-comment-add" not in scope["path"]:
            await self.app(scope, receive, send)  # type: ignore[operator]
            return
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            await asyncio.sleep(0.2)
            await self.app(scope, receive, send)  # type: ignore[operator]
        finally:
            self.now -= 1


def test_operations_of_different_orders_run_side_by_side_and_one_orders_stay_in_order(
    tmp_path: Path,
) -> None:
    import asyncio

    from ordersync.operations import AddComment
    from ordersync.writeback.drain import Drainer
    from ordersync.writeback.service import open_writers

    overlap = _Overlap()
    gen = serve_shops(tmp_path, wc_wrap=overlap.wrap)
    shops = next(gen)
    store = shops.store()
    try:
        with store.engine.begin() as connection:
            for order_id in range(1, 7):
                op = AddComment(order_id=str(order_id), text=f"note for {order_id}")
                outbox.enqueue(connection, key=f"t/{order_id}", shop="wc", op=op, origin="manual")
            for n in range(3):  # three for one order: applied in the order queued
                op = AddComment(order_id="9", text=f"step {n}")
                outbox.enqueue(connection, key=f"t/9/{n}", shop="wc", op=op, origin="manual")

        async def drain() -> object:
            async with open_writers(shops.settings()) as writers:
                return await Drainer(shops.settings(), store, writers).drain()

        asyncio.run(drain())
        assert {r.status for r in outbox.rows(store)} == {outbox.DONE}
        assert overlap.most > 1  # side by side (4 at once by default)
        steps = [c["content"] for c in shops.wc.get("9")["orderComment"] if c["content"].startswith("step")]
        assert steps == ["step 0", "step 1", "step 2"]
    finally:
        store.dispose()
        gen.close()


def test_a_webcommander_order_replicates_into_woocommerce_by_source_product_id(tmp_path: Path) -> None:
    """WebCommander lines carry a productId and no SKU: the route's product_ids maps them (a
    variation as ``parent:variation``), and an unmapped product refuses the order naming its id."""
    from ordersync.sandbox.woocommerce.catalog import PRODUCTS

    mug = next(p for p in PRODUCTS if p.sku == "SKU-001")
    shirt = next(p for p in PRODUCTS if p.sku == "TSHIRT-S")
    for shops in serve_shops(tmp_path):
        shops.routes = [
            {
                "from": "wc",
                "to": "woo",
                "changes": ["orders"],
                "product_ids": {495: str(mug.id), "510": f"{shirt.parent_id}:{shirt.id}"},
            }
        ]
        state = shops.store()
        try:
            shops.cycle(state)
            item = {"productType": "product", "quantity": 2, "price": 11.0, "isTaxable": True}
            address = {
                "firstName": "Erika",
                "addressLine1": "Hauptstr. 1",
                "city": "Berlin",
                "postCode": "10115",
                "countryId": "81",
                "email": "erika@example.com",
            }
            base = {"billingAddress": address, "shippingAddress": address}
            made = shops.wc.create(
                {**base, "items": [{**item, "productId": 495}, {**item, "productId": 510}]}
            )
            unmapped = shops.wc.create({**base, "items": [{**item, "productId": 499}]})
            before = set(shops.woo.order_ids())
            shops.cycle(state)
            with state.engine.connect() as connection:
                woo_id = state_links.counterpart(connection, "wc", str(made["id"]), "woo")
                assert state_links.counterpart(connection, "wc", str(unmapped["id"]), "woo") is None
            assert woo_id is not None and set(shops.woo.order_ids()) - before == {int(woo_id)}
            lines = shops.woo.get(woo_id).lines
            assert [(li.product.id, li.quantity) for li in lines] == [(mug.id, 2), (shirt.id, 2)]
            # WooCommerce taxed the copy by its own rates: linked all the same, with the difference.
            with state.engine.connect() as connection:
                (link,) = [x for x in state_links.all_links(connection) if x.target_order_id == woo_id]
            difference = shops.woo.get(woo_id).total - Decimal(
                str(shops.wc.get(made["id"])["orderSummary"]["grandTotal"])
            )
            assert difference and link.total_difference == difference
            (dead,) = [r for r in outbox.rows(state) if r.status == outbox.DEAD]
            assert "product id 499" in (dead.last_error or "") and "product_ids" in (dead.last_error or "")
        finally:
            state.dispose()


def test_a_note_another_integration_posted_is_routed_and_woocommerces_own_are_not(
    shops: Shops, state: StateStore
) -> None:
    woo_id, wc_id = _replicated(shops, state)
    # Both say "WooCommerce" as their author, as every note posted through the REST API does.
    shops.woo.add_note(woo_id, "CRM: customer asked for gift wrap")
    shops.woo.add_note(woo_id, 'Email "Customer note" sent.')
    shops.cycle(state)
    texts = [c["content"] for c in shops.wc.get(wc_id)["orderComment"]]
    assert texts.count("CRM: customer asked for gift wrap") == 1
    assert not any(t.startswith("Email ") for t in texts)
    shops.cycle(state)  # and what ordersync wrote into WebCommander does not come back
    assert [n.text for n in shops.woo.get(woo_id).notes].count("CRM: customer asked for gift wrap") == 1
