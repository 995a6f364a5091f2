"""``ordersync webhooks install|list|remove``: ordersync's webhooks on a WooCommerce shop.

They write to the shop, so they need a config (or ``--demo``), like ``push``. Exit 0 done, 1 the
shop refused or could not be reached, 2 a bad config or option.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from ordersync.cli_options import ConfigOption, DemoOption
from ordersync.errors import ConfigError, OrderSyncError
from ordersync.lazy import Lazy

if TYPE_CHECKING:
    from ordersync.config import Settings, WooCommerceShop

asyncio = Lazy("asyncio")
manage = Lazy("ordersync.webhooks.manage")

console = Console(stderr=True)
out = Console()

webhooks_app = typer.Typer(no_args_is_help=True, help="WooCommerce webhooks: register, list, remove.")

ShopArg = Annotated[str, typer.Option("--shop", "-s", help="The WooCommerce shop.")]


def _shop(config: object, demo: bool, name: str, command: str) -> tuple[Settings, WooCommerceShop]:
    from ordersync.cli import _fail, settings_for
    from ordersync.config import WooCommerceShop

    settings = settings_for(config, f"webhooks {command}", writes=True, demo=demo)  # type: ignore[arg-type]
    try:
        shop = settings.shop(name)
    except ConfigError as exc:
        raise _fail(exc, 2) from None
    if not isinstance(shop, WooCommerceShop):
        raise _fail(ConfigError(f"shop {name!r} is not a WooCommerce shop: webhooks are WooCommerce's"), 2)
    return settings, shop


def _run(settings: Settings, shop: WooCommerceShop, work: object) -> object:
    """``work(shop, store)`` with the embedded sandbox serving the shop when the config asks for it."""
    from ordersync.cli import _fail, _open_store, start_embedded_sandbox

    store = _open_store(settings)
    try:
        with ExitStack() as stack:
            if settings.sandbox.enabled:
                settings = start_embedded_sandbox(settings, stack)
                shop = settings.shop(shop.name)  # type: ignore[assignment]
            return asyncio.run(work(shop, store))  # type: ignore[operator]
    except ConfigError as exc:
        raise _fail(exc, 2) from None
    except OrderSyncError as exc:
        raise _fail(exc, 1) from None
    finally:
        store.dispose()


@webhooks_app.command("install")
def install(
    shop: ShopArg,
    url: Annotated[
        str,
        typer.Option("--url", help="Where WooCommerce posts: https://<host>/webhooks/woocommerce/<shop>."),
    ],
    config: ConfigOption = None,
    demo: DemoOption = False,
) -> None:
    """Register one webhook per order topic (created, updated, deleted, restored) to URL, replacing
    ordersync's earlier ones to it (a webhook WooCommerce disabled comes back active). The secret is
    the shop's webhook_secret from the config, else a new one kept in the state store."""
    settings, woo = _shop(config, demo, shop, "install")
    created = _run(settings, woo, lambda s, store: manage.install(s, settings.http, store, url))
    for webhook in created:  # type: ignore[attr-defined]
        out.print(
            f"{webhook.id}  {webhook.topic:<15} {webhook.status:<8} {escape(webhook.delivery_url)}",
            soft_wrap=True,
        )
    where = "the config's webhook_secret" if woo.webhook_secret else "a new secret kept in the state store"
    console.print(f"installed {len(created)} webhooks on {escape(shop)}, signed with {where}")  # type: ignore[arg-type]


@webhooks_app.command("list")
def list_(shop: ShopArg, config: ConfigOption = None, demo: DemoOption = False) -> None:
    """The shop's webhooks as WooCommerce holds them; ordersync's are marked. A `disabled` one is one
    WooCommerce gave up on after failed deliveries: run `ordersync webhooks install` again."""
    settings, woo = _shop(config, demo, shop, "list")
    found = _run(settings, woo, lambda s, _store: manage.list_webhooks(s, settings.http))
    for webhook in found:  # type: ignore[attr-defined]
        mark = "ordersync" if webhook.ours else "other"
        out.print(
            f"{webhook.id}  {webhook.topic:<15} {webhook.status:<8} {mark:<9} {escape(webhook.delivery_url)}",
            soft_wrap=True,
        )
    if any(w.ours and w.status == "disabled" for w in found):  # type: ignore[attr-defined]
        console.print(
            "[yellow]WooCommerce disabled ordersync's webhooks after failed deliveries:[/] run "
            "`ordersync webhooks install` again once the receiver is reachable (polling covers the gap)"
        )


@webhooks_app.command("remove")
def remove(
    shop: ShopArg,
    url: Annotated[str | None, typer.Option("--url", help="Only those posting to this URL.")] = None,
    config: ConfigOption = None,
    demo: DemoOption = False,
) -> None:
    """Delete ordersync's webhooks from the shop (others are left alone); polling carries on."""
    settings, woo = _shop(config, demo, shop, "remove")
    removed = _run(settings, woo, lambda s, store: manage.remove(s, settings.http, store, url=url))
    console.print(f"removed {len(removed)} webhook(s) from {escape(shop)}")  # type: ignore[arg-type]
