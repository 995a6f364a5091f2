"""Writing status ``refunded`` to WooCommerce moves money: WooCommerce answers it by refunding what is
left itself ("Order fully refunded."), with no marker and no check of what was refunded already. The
sandbox does what the real shop does, and ordersync never writes that status."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ordersync.cli import app
from ordersync.state import outbox
from tests.e2e.writeback_shops import Shops, serve_shops


@pytest.fixture
def shops(tmp_path: Path) -> Iterator[Shops]:
    yield from serve_shops(tmp_path)


def _push(shops: Shops, kind: str, order_id: int, *args: str) -> Any:
    """``ordersync push KIND --shop woo --order ID ...`` against the sandboxes' config."""
    argv = [
        "push",
        kind,
        "--shop",
        "woo",
        "--order",
        str(order_id),
        *args,
        "--config",
        str(shops.write_config()),
    ]
    return CliRunner().invoke(app, argv)


def _paid_order(shops: Shops) -> int:
    return next(o.id for o in shops.woo.orders.values() if o.status == "processing" and o.total > 0)


def test_the_sandbox_refunds_what_is_left_when_the_status_is_set_to_refunded(shops: Shops) -> None:
    order_id = _paid_order(shops)
    order = shops.woo.get(order_id)
    left = order.total - order.refunded
    shops.woo.update_order(order_id, {"status": "refunded"})
    (refund,) = [r for r in shops.woo.get(order_id).refunds if r.reason == "Order fully refunded."]
    assert refund.amount == left and shops.woo.get(order_id).status == "refunded"


def test_push_status_refunded_is_refused_with_a_pointer_to_push_refund(shops: Shops) -> None:
    order_id = _paid_order(shops)
    before = len(shops.woo.get(order_id).refunds)
    result = _push(shops, "status", order_id, "--status", "refunded")
    assert result.exit_code == 2 and "push refund" in result.output
    assert len(shops.woo.get(order_id).refunds) == before and shops.woo.get(order_id).status == "processing"


def test_a_full_refund_pushed_as_a_refund_is_one_refund_and_woocommerce_sets_the_status(shops: Shops) -> None:
    order_id = _paid_order(shops)
    order = shops.woo.get(order_id)
    left, before = order.total - order.refunded, len(order.refunds)
    result = _push(shops, "refund", order_id, "--amount", str(left))
    assert result.exit_code == 0, result.output
    after = shops.woo.get(order_id)
    assert [r.amount for r in after.refunds[before:]] == [Decimal(left)]
    assert after.status == "refunded"  # set by WooCommerce, as for any full refund
    state = shops.store()
    try:
        assert all(r.kind != "set_status" for r in outbox.rows(state))
    finally:
        state.dispose()
