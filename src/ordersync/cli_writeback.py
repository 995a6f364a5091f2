"""``ordersync push ...`` and ``ordersync outbox ...``: a person's writes, and the outbox's contents.

A push goes through the outbox like a routed change: under an idempotency key (``--key`` lets a
script re-run safely), with the same find-before-resend, retries and dead letters.
Exit codes: 0 applied, 1 refused or dead-lettered, 3 still queued (failed for now, retried later).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from ordersync.cli_options import ConfigOption, DemoOption
from ordersync.errors import ConfigError, OrderSyncError
from ordersync.lazy import Lazy

# The models, the outbox and SQLAlchemy load when a command runs, not for `ordersync --help`.
if TYPE_CHECKING:
    from ordersync.config import Settings
    from ordersync.operations import Operation
    from ordersync.state import outbox as outbox_module
    from ordersync.state.store import StateStore


operations = Lazy("ordersync.operations")
outbox = Lazy("ordersync.state.outbox")
models = Lazy("ordersync.models")
asyncio = Lazy("asyncio")


console = Console(stderr=True)
out = Console()


def _fail(exc: Exception, code: int) -> typer.Exit:
    from ordersync.cli import _fail as fail

    return fail(exc, code)


def _open_store(settings: Settings) -> StateStore:
    from ordersync.cli import _open_store as open_store

    return open_store(settings)


CurrencyOption = Annotated[str | None, typer.Option(help="Refused if the order is in another currency.")]
AmountOption = Annotated[str, typer.Option(help="Positive amount, e.g. 12.50.")]

push_app = typer.Typer(no_args_is_help=True, help="Write to a shop through the outbox, exactly once.")
outbox_app = typer.Typer(no_args_is_help=True, help="Queued writes: list, retry or drop them.")

ShopArg = Annotated[str, typer.Option("--shop", "-s", help="The shop to write to.")]
OrderArg = Annotated[str, typer.Option("--order", "-o", help="The order's id in that shop.")]
KeyOption = Annotated[
    str | None,
    typer.Option("--key", help="Idempotency key: one key never takes effect twice (default: a new one)."),
]


def _settings(config: Any, command: str, *, writes: bool = False, demo: bool = False) -> Settings:
    from ordersync.cli import settings_for

    return settings_for(config, command, writes=writes, demo=demo)


@contextmanager
def _session(config: Any, command: str, demo: bool) -> Iterator[tuple[Settings, StateStore]]:
    settings = _settings(config, command, writes=True, demo=demo)
    store = _open_store(settings)
    try:
        with ExitStack() as stack:
            if settings.sandbox.enabled:
                from ordersync.cli import start_embedded_sandbox

                settings = start_embedded_sandbox(settings, stack)
            yield settings, store
    finally:
        store.dispose()


def _status_value(field: str, platform: str, given: str) -> tuple[str, str | None]:
    """(the platform's value, the canonical status) for a status given either way."""
    from ordersync.mapping.statuses import writable

    table = writable(field, platform)  # type: ignore[arg-type]
    if given in table:
        return table[given], given
    reverse = {value: canonical for canonical, value in table.items()}
    if given in reverse:
        return given, reverse[given]
    from ordersync.models import OrderStatus, PaymentStatus

    canonical = {s.value for s in (OrderStatus if field == "order_status" else PaymentStatus)}
    if field == "order_status" and given == "refunded":
        raise ValueError(
            "a status of 'refunded' is not written: a refund is money, not a status (WooCommerce would "
            "refund what is left by itself); use `ordersync push refund`, and the shop sets the status"
        )
    if given in canonical:
        raise ValueError(
            f"{platform} has no value for the {field.replace('_', ' ')} {given!r} (mappings/statuses.yaml "
            f"maps {', '.join(sorted(table)) or 'none'})"
        )
    return given, None  # a custom status: the writer checks it against the shop


def _push(config: Any, shop: str, build: Any, key: str | None, demo: bool, command: str) -> None:
    from ordersync.writeback.service import publish, push

    with _session(config, command, demo) as (settings, store):
        try:
            target = settings.shop(shop)
            op: Operation = build(target.platform)
        except ConfigError as exc:
            raise _fail(exc, 2) from None
        except ValueError as exc:
            raise _fail(OrderSyncError(str(exc)), 2) from None
        try:
            row = asyncio.run(push(settings, store, shop, op, key=key))
        except OrderSyncError as exc:
            raise _fail(exc, 1) from None
        publish(store, settings.mirror.open())
    _report(row)


def _report(row: outbox_module.OutboxRow) -> None:
    from ordersync.writeback.service import describe

    what = f"#{row.id} {describe(row)} → {row.shop} order {row.order_id or '-'}"
    if row.status == outbox.DONE:
        result = row.result or {}
        how = "already so" if result.get("already") else "found applied" if result.get("found") else "applied"
        ids = ", ".join(f"{k}={v}" for k, v in (result.get("ids") or {}).items())
        out.print(f"{escape(what)}: {how}{escape(' (' + ids + ')') if ids else ''}")
        return
    if row.status == outbox.PENDING:
        out.print(f"{escape(what)}: queued, will retry ({escape(row.last_error or '')})")
        raise typer.Exit(3)
    out.print(f"{escape(what)}: {row.status}: {escape(row.last_error or '')}")
    raise typer.Exit(1)


def _money(value: str, what: str) -> Decimal:
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"{what} {value!r} is not a number") from None
    if not amount.is_finite() or amount <= 0:
        raise ValueError(f"{what} must be a positive amount, got {value!r}")
    return amount


@push_app.command("status")
def push_status(
    shop: ShopArg,
    order: OrderArg,
    status: Annotated[str, typer.Option(help="A canonical status (on_hold) or the shop's own (on-hold).")],
    key: KeyOption = None,
    config: ConfigOption = None,
    demo: DemoOption = False,
) -> None:
    """Set an order's status."""

    def build(platform: str) -> Operation:
        value, canonical = _status_value("order_status", platform, status)
        return operations.SetStatus(
            order_id=order, value=value, status=models.OrderStatus(canonical) if canonical else None
        )

    _push(config, shop, build, key, demo, "push status")


@push_app.command("payment-status")
def push_payment_status(
    shop: ShopArg,
    order: OrderArg,
    status: Annotated[str, typer.Option(help="A canonical payment status (paid) or the shop's own.")],
    key: KeyOption = None,
    config: ConfigOption = None,
    demo: DemoOption = False,
) -> None:
    """Set an order's payment status (WooCommerce: only 'paid')."""

    def build(platform: str) -> Operation:
        value, canonical = _status_value("payment_status", platform, status)
        return operations.SetPaymentStatus(
            order_id=order, value=value, status=models.PaymentStatus(canonical) if canonical else None
        )

    _push(config, shop, build, key, demo, "push payment-status")


@push_app.command("comment")
def push_comment(
    shop: ShopArg,
    order: OrderArg,
    text: Annotated[str, typer.Option(help="The comment.")],
    customer: Annotated[bool, typer.Option("--customer", help="Visible to the customer.")] = False,
    key: KeyOption = None,
    config: ConfigOption = None,
    demo: DemoOption = False,
) -> None:
    """Add a comment (internal unless --customer)."""
    _push(
        config,
        shop,
        lambda _p: operations.AddComment(order_id=order, text=text, customer_visible=customer),
        key,
        demo,
        "push comment",
    )


@push_app.command("refund")
def push_refund(
    shop: ShopArg,
    order: OrderArg,
    amount: AmountOption,
    reason: Annotated[str | None, typer.Option(help="Why; kept where the shop keeps one.")] = None,
    currency: CurrencyOption = None,
    payment_id: Annotated[str | None, typer.Option(help="WebCommander: the payment to refund.")] = None,
    key: KeyOption = None,
    config: ConfigOption = None,
    demo: DemoOption = False,
) -> None:
    """Refund part or all of an order; never more than remains refundable."""

    def build(_platform: str) -> Operation:
        return operations.CreateRefund(
            order_id=order,
            amount=_money(amount, "amount"),
            reason=reason,
            currency=currency.upper() if currency else None,
            payment_id=payment_id,
        )

    _push(config, shop, build, key, demo, "push refund")


@push_app.command("payment")
def push_payment(
    shop: ShopArg,
    order: OrderArg,
    amount: AmountOption,
    gateway: Annotated[str | None, typer.Option(help="Payment gateway code.")] = None,
    transaction_id: Annotated[str | None, typer.Option(help="The gateway's transaction id.")] = None,
    currency: CurrencyOption = None,
    key: KeyOption = None,
    config: ConfigOption = None,
    demo: DemoOption = False,
) -> None:
    """Record a payment received for an order."""

    def build(_platform: str) -> Operation:
        return operations.RecordPayment(
            order_id=order,
            amount=_money(amount, "amount"),
            gateway=gateway,
            transaction_id=transaction_id,
            currency=currency.upper() if currency else None,
        )

    _push(config, shop, build, key, demo, "push payment")


@push_app.command("cancel")
def push_cancel(
    shop: ShopArg,
    order: OrderArg,
    key: KeyOption = None,
    config: ConfigOption = None,
    demo: DemoOption = False,
) -> None:
    """Cancel an order."""
    _push(config, shop, lambda _p: operations.CancelOrder(order_id=order), key, demo, "push cancel")


@push_app.command("invoice")
def push_invoice(
    shop: ShopArg,
    order: OrderArg,
    notes: Annotated[str | None, typer.Option(help="Notes printed on the invoice.")] = None,
    key: KeyOption = None,
    config: ConfigOption = None,
    demo: DemoOption = False,
) -> None:
    """Send the order's invoice to the customer."""
    _push(
        config,
        shop,
        lambda _p: operations.SendInvoice(order_id=order, notes=notes),
        key,
        demo,
        "push invoice",
    )


# -- outbox ------------------------------------------------------------------------------------------
@outbox_app.command("list")
def outbox_list(
    status: Annotated[
        list[str] | None, typer.Option("--status", help="pending, sending, done, dead, superseded, dropped.")
    ] = None,
    shop: Annotated[str | None, typer.Option("--shop", "-s", help="Only writes to this shop.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, oldest first.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="JSON on stdout, for scripts.")] = False,
    config: ConfigOption = None,
) -> None:
    """What the outbox holds: each operation, its target, status, attempts and last error."""
    from ordersync.writeback.service import describe

    settings = _settings(config, "outbox list")
    store = _open_store(settings)
    try:
        found = outbox.rows(store, statuses=status, shop=shop, limit=limit)
    finally:
        store.dispose()
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {
                        "id": r.id,
                        "key": r.key,
                        "shop": r.shop,
                        "kind": r.kind,
                        "order_id": r.order_id,
                        "status": r.status,
                        "attempts": r.attempts,
                        "summary": describe(r),
                        "last_error": r.last_error,
                        "result": r.result,
                        "created_at": r.created_at.isoformat(),
                        "next_attempt_at": r.next_attempt_at.isoformat() if r.next_attempt_at else None,
                    }
                    for r in found
                ],
                indent=2,
            )
        )
        return
    from rich.table import Table

    table = Table(title=f"outbox ({len(found)} shown)", title_justify="left")
    for column in ("id", "shop", "order", "operation", "status", "tries", "last error"):
        table.add_column(column, overflow="fold")
    for r in found:
        table.add_row(
            str(r.id),
            r.shop,
            r.order_id or "-",
            escape(describe(r)),
            r.status,
            str(r.attempts),
            escape((r.last_error or "")[:160]),
        )
    out.print(table)


def _drain(settings: Settings, store: StateStore) -> Any:
    """Apply what is due, show the outcome in the mirror and say what happened."""
    from ordersync.writeback.service import drain_outbox, publish

    stats = asyncio.run(drain_outbox(settings, store))
    publish(store, settings.mirror.open())
    out.print("applied: " + (", ".join(f"{v} {k}" for k, v in stats.as_dict().items()) or "nothing due"))
    return stats


def _ids(values: list[str] | None) -> list[int] | None:
    if not values:
        return None
    try:
        return [int(v) for v in values]
    except ValueError:
        raise typer.BadParameter("ids are the numbers `ordersync outbox list` shows") from None


@outbox_app.command("retry")
def outbox_retry(
    ids: Annotated[list[str] | None, typer.Argument(help="Dead operations to retry (default: all).")] = None,
    shop: Annotated[str | None, typer.Option("--shop", "-s", help="Only writes to this shop.")] = None,
    config: ConfigOption = None,
    demo: DemoOption = False,
) -> None:
    """Give dead-lettered operations fresh attempts and apply them now."""
    wanted = _ids(ids)
    with _session(config, "outbox retry", demo) as (settings, store):
        revived = outbox.retry(store, wanted, shop=shop)
        out.print(f"{revived} operation(s) back in the queue")
        stats = _drain(settings, store)
    if stats.dead or stats.retried:
        raise typer.Exit(1)


@outbox_app.command("drop")
def outbox_drop(
    ids: Annotated[list[str], typer.Argument(help="Pending or dead operations to give up on.")],
    config: ConfigOption = None,
    demo: DemoOption = False,
) -> None:
    """Give up on operations for good (they stay listed, as dropped)."""
    settings = _settings(config, "outbox drop", writes=True, demo=demo)
    store = _open_store(settings)
    try:
        dropped = outbox.drop(store, _ids(ids) or [])
    finally:
        store.dispose()
    out.print(f"{dropped} operation(s) dropped")
    if dropped != len(ids):
        console.print("[yellow]some ids were not pending or dead, or do not exist[/]")
        raise typer.Exit(1)


@outbox_app.command("drain")
def outbox_drain(config: ConfigOption = None, demo: DemoOption = False) -> None:
    """Apply every operation that is due now, then exit."""
    with _session(config, "outbox drain", demo) as (settings, store):
        _drain(settings, store)
