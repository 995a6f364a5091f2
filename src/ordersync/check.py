"""``ordersync check``: each shop's credentials and reachability, read-only, one request per API.

Why: an operator wants to know that a config works before a daemon runs it for hours (as Airbyte's
``check``). Each shop gets one list request of one order (the WebCommander external-app API, or the
WooCommerce API the shop is set to), with no retries, so a wrong secret or a closed port is named
at once; nothing is written anywhere, the state store and the mirror included.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ordersync.config import HttpSettings, Settings, ShopConfig, WebCommanderShop
from ordersync.http import HttpPolicy
from ordersync.sync.sources import WooCommerceSource, open_source


@dataclass(frozen=True)
class Verdict:
    shop: str
    platform: str
    ok: bool
    detail: str


async def check_shop(shop: ShopConfig, settings: Settings) -> Verdict:
    http = HttpSettings(**{**settings.http.model_dump(), "max_retries": 0})
    policy = HttpPolicy(http, shop=shop.name)
    started = time.perf_counter()
    try:
        async with open_source(shop, http, policy=policy) as (source, _):
            if isinstance(shop, WebCommanderShop):
                page = await source.client.orders_page(0, 1, keep_orders=False)  # type: ignore[union-attr]
                listed = f"{page.total:,} orders listed"
                api = "external-app API"
                if shop.admin_api is not None:
                    await _admin_token(shop, policy)
                    api = "external-app API and v4 admin API (token issued)"
            else:
                assert isinstance(source, WooCommerceSource)
                woo = await source.client.orders_page(1, 1, keep_orders=False)
                listed = f"{woo.total:,} orders listed" if woo.total is not None else "orders listed"
                api = f"REST {shop.api_version}"  # type: ignore[union-attr]
    except Exception as exc:  # every failure is the verdict, named; nothing else is at stake
        return Verdict(shop.name, shop.platform, False, str(exc) or type(exc).__name__)
    ms = (time.perf_counter() - started) * 1000
    return Verdict(shop.name, shop.platform, True, f"{api}: {listed}, answered in {ms:,.0f} ms")


async def _admin_token(shop: WebCommanderShop, policy: HttpPolicy) -> None:
    """One token request to the v4 admin API: its only request that writes nothing."""
    from ordersync.http import build_client
    from ordersync.platforms.webcommander.oauth2 import ClientCredentialsAuth

    admin = shop.admin_api
    assert admin is not None
    auth = ClientCredentialsAuth(
        admin.base_url,
        admin.client_id.get_secret_value(),
        admin.client_secret.get_secret_value(),
        shop=shop.name,
    )
    client = build_client(admin.base_url, policy, max_connections=1)
    try:
        await auth.fetch_token(client)
    finally:
        await client.aclose()
