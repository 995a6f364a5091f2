"""`ordersync push` against a WebCommander shop that follows the documents and nothing more: it ignores
``Idempotency-Key``, takes only the documented values and bodies, and here loses its answer after doing
the write. Each push takes effect exactly once (an invoice, which leaves no trace, at most once and
said so); money above what is due never leaves."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from ordersync.cli import app
from ordersync.sandbox.faults import Fault, FaultInjector
from ordersync.sandbox.server import SandboxServer
from ordersync.sandbox.webcommander.admin_api import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
from ordersync.sandbox.webcommander.app import DEFAULT_TOKEN, DEFAULT_UUID, create_app
from ordersync.sandbox.webcommander.generator import dec
from ordersync.sandbox.webcommander.store import WebCommanderStore


class DocumentedShop:
    def __init__(self, tmp_path: Path, *, replay_keys: bool):
        self.store = WebCommanderStore(orders=20, seed=9, timezone="Australia/Melbourne")
        self.app: FaultInjector = create_app(self.store, replay_keys=replay_keys)
        self.server = SandboxServer(self.app)
        self.tmp_path = tmp_path

    def __enter__(self) -> DocumentedShop:
        self.server.__enter__()
        url = self.server.base_url
        self.config = self.tmp_path / "sync.yaml"
        self.config.write_text(
            yaml.safe_dump(
                {
                    "mirror": {"path": str(self.tmp_path / "mirror.duckdb")},
                    "state": {"url": f"sqlite:///{self.tmp_path / 'state.db'}", "auto_upgrade": True},
                    "http": {"max_retries": 1, "backoff_base": 0.01, "backoff_max": 0.02, "timeout": 5},
                    "sync": {"outbox": {"backoff_base": 0, "backoff_max": 0}},
                    "shops": [
                        {
                            "name": "wc",
                            "platform": "webcommander",
                            "base_url": url,
                            "uuid": DEFAULT_UUID,
                            "access_token": DEFAULT_TOKEN,
                            "timezone": "Australia/Melbourne",
                            "currency": "AUD",
                            "admin_api": {
                                "base_url": url,
                                "client_id": DEFAULT_CLIENT_ID,
                                "client_secret": DEFAULT_CLIENT_SECRET,
                            },
                        }
                    ],
                }
            )
        )
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.__exit__(*exc)

    def run(self, *args: str) -> Any:
        return CliRunner().invoke(app, [*args, "--config", str(self.config)])

    def unpaid(self) -> dict[str, Any]:
        return next(o for o in self.store.orders() if o["paymentStatus"] == "unpaid" and o["items"])


def _effect(shop: DocumentedShop, kind: str, order: dict[str, Any]) -> tuple[list[str], Any]:
    """The push's arguments and a function giving its effect on the order, counted."""
    oid = str(order["id"])
    if kind == "payment":
        before = len(order["payments"])
        return [
            "payment",
            "--order",
            oid,
            "--amount",
            "5.00",
        ], lambda: len(shop.store.get(oid)["payments"]) - before
    if kind == "payment-status":
        return ["payment-status", "--order", oid, "--status", "paid"], lambda: shop.store.get(oid)[
            "paymentStatus"
        ]
    if kind == "comment":
        return ["comment", "--order", oid, "--text", "Shipped today", "--customer"], lambda: [
            c["isVisibleToCustomer"]
            for c in shop.store.get(oid)["orderComment"]
            if c["content"] == "Shipped today"
        ]
    if kind == "cancel":
        return ["cancel", "--order", oid], lambda: shop.store.get(oid)["orderStatus"]
    assert kind == "invoice"
    return ["invoice", "--order", oid, "--notes", "Pay within 14 days"], lambda: len(shop.store.invoices)


EXPECTED = {
    "payment": 1,
    "payment-status": "completed",
    "comment": [True],
    "cancel": "cancelled",
    "invoice": 1,
}
PATHS = {
    "payment": "make-order-payment",
    "payment-status": "change-order-payment-status",
    "comment": "/comments",
    "cancel": "/cancel",
    "invoice": "/send-invoice",
}


@pytest.fixture
def documented(tmp_path: Path) -> Iterator[DocumentedShop]:
    with DocumentedShop(tmp_path, replay_keys=False) as shop:
        yield shop


@pytest.mark.parametrize("kind", list(EXPECTED))
def test_each_push_applies_once_on_a_documented_shop(documented: DocumentedShop, kind: str) -> None:
    order = documented.unpaid()
    args, effect = _effect(documented, kind, order)
    result = documented.run("push", *args, "--shop", "wc", "--key", f"k-{kind}")
    assert result.exit_code == 0, result.output
    assert effect() == EXPECTED[kind]
    again = documented.run("push", *args, "--shop", "wc", "--key", f"k-{kind}")  # a script run twice
    assert again.exit_code == 0 and effect() == EXPECTED[kind]


@pytest.mark.parametrize("kind", list(EXPECTED))
def test_a_push_whose_answer_is_lost_after_the_shop_applied_it_takes_effect_once(
    documented: DocumentedShop, kind: str
) -> None:
    order = documented.unpaid()
    args, effect = _effect(documented, kind, order)
    documented.app.script(PATHS[kind], [Fault.lost_after_apply()])
    lost = documented.run("push", *args, "--shop", "wc", "--key", f"lost-{kind}")
    assert lost.exit_code == 3, lost.output  # queued: the shop's answer never came
    drained = documented.run("outbox", "drain")
    assert drained.exit_code == 0, drained.output
    assert effect() == EXPECTED[kind]  # applied once, never twice
    listed = documented.run("outbox", "list", "--json")
    (row,) = [r for r in yaml.safe_load(listed.output) if r["key"] == f"lost-{kind}"]
    if kind == "invoice":
        # No trace to look for and no key replay: not sent again, and the dead letter says why.
        assert row["status"] == "dead" and "not sent again" in row["last_error"]
    else:
        assert row["status"] == "done" and row["result"].get("found") is True


def test_an_invoice_is_resent_under_its_key_where_the_shop_replays_keys(tmp_path: Path) -> None:
    with DocumentedShop(tmp_path, replay_keys=True) as shop:
        config = yaml.safe_load(shop.config.read_text())
        config["shops"][0]["idempotency_keys"] = True
        shop.config.write_text(yaml.safe_dump(config))
        order = shop.unpaid()
        shop.app.script("/send-invoice", [Fault.lost_after_apply()])
        assert shop.run("push", "invoice", "--shop", "wc", "--order", str(order["id"])).exit_code == 3
        assert shop.run("outbox", "drain").exit_code == 0
        assert len(shop.store.invoices) == 1  # the resend was answered from the key, not mailed again


def test_a_payment_above_what_is_due_is_refused_before_sending(documented: DocumentedShop) -> None:
    order = documented.unpaid()
    due = dec(order["orderSummary"]["grandTotal"]) - dec(order["orderSummary"]["paid"])
    result = documented.run(
        "push", "payment", "--shop", "wc", "--order", str(order["id"]), "--amount", str(due + Decimal("0.01"))
    )
    assert result.exit_code == 1 and "more than the" in result.output
    assert documented.app.total_requests("make-order-payment") == 0


def test_a_status_webcommander_has_no_value_for_is_refused_by_push(documented: DocumentedShop) -> None:
    result = documented.run("push", "status", "--shop", "wc", "--order", "3", "--status", "on_hold")
    assert result.exit_code != 0 and "on_hold" in result.output
    assert documented.app.total_requests("change-order-Status") == 0


def test_a_refused_token_request_dead_letters_at_once_and_is_not_retried(documented: DocumentedShop) -> None:
    config = yaml.safe_load(documented.config.read_text())
    config["shops"][0]["admin_api"]["client_secret"] = "not-the-secret"
    documented.config.write_text(yaml.safe_dump(config))
    result = documented.run("push", "invoice", "--shop", "wc", "--order", "3")
    assert result.exit_code == 1 and "token request refused" in result.output
    assert "not-the-secret" not in result.output
    assert documented.run("outbox", "drain").exit_code == 0
    assert documented.app.total_requests("/oauth2/token") == 1  # dead at once, never tried again
    assert documented.store.invoices == []
