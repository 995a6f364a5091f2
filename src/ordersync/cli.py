"""The ``ordersync`` command: backfill, incremental sync, the daemon, status, the sandbox shops and
the state database."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from ordersync.cli_options import ConfigOption, DemoOption
from ordersync.errors import ConfigError, OrderSyncError
from ordersync.lazy import Lazy

# Everything else is imported where it is used: `ordersync --help` must not load pydantic, DuckDB,
# SQLAlchemy or httpx (it answers in well under half a second that way).
asyncio = Lazy("asyncio")

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID
    from rich.table import Table

    from ordersync.config import Settings, ShopConfig
    from ordersync.mirror.store import Mirror
    from ordersync.state.store import StateStore
    from ordersync.sync.pipeline import ProgressCallback, RunStats

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Order sync and ETL for WebCommander and WooCommerce, mirrored into DuckDB.",
)
console = Console(stderr=True, soft_wrap=True)  # a message is one line in a log, whatever the width
# Piped into a file or a log collector, a summary keeps its lines whole instead of wrapping at 80.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 240)


class _Log:
    """structlog's logger, imported at the first event."""

    def __getattr__(self, name: str) -> Any:
        import structlog

        return getattr(structlog.get_logger("ordersync.cli"), name)


log = _Log()
T = TypeVar("T")

DEMO_LINE = (
    "demo: no --config and no ORDERSYNC_CONFIG, so this runs on the embedded demo "
    "(sandbox shops on loopback, ./ordersync.duckdb, ./ordersync-state.db)"
)
LogJson = Annotated[bool, typer.Option("--log-json", help="Log JSON lines instead of readable text.")]


def _parse_since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not an ISO date or datetime (e.g. 2024-01-31)") from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _fail(exc: Exception, code: int) -> typer.Exit:
    from ordersync.logging import json_logs

    if json_logs():  # the last line of a JSON log says why the command ended
        log.error("cli.failed", error=str(exc), error_type=type(exc).__name__, exit_code=code)
    else:
        # Escaped: error texts carry platform codes in brackets ([woocommerce_rest_...]), not markup.
        console.print(f"[bold red]error:[/] {escape(str(exc))}")
    return typer.Exit(code)


def _configure_logging(**kwargs: Any) -> None:
    from ordersync.logging import configure_logging

    configure_logging(**kwargs)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        out.print(f"ordersync {version('ordersync')}")
        raise typer.Exit(0)


@app.callback()
def _options(
    log_json: Annotated[
        bool, typer.Option("--log-json", help="JSON log lines for any command (stderr), the final error too.")
    ] = False,
    log_level: Annotated[str, typer.Option("--log-level", help="DEBUG, INFO, WARNING or ERROR.")] = "INFO",
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Order sync and ETL for WebCommander and WooCommerce, mirrored into DuckDB."""
    from ordersync.logging import configure_logging, set_defaults

    try:
        set_defaults(json=log_json, level=log_level)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--log-level") from None
    configure_logging()


def settings_for(config: Path | None, command: str, *, writes: bool = False, demo: bool = False) -> Settings:
    """The settings a command runs with. Without a config a command that only reads or syncs runs on
    the embedded demo and says so first; one that writes to shops or migrates a store refuses (exit
    2) unless ``--demo`` asks for the demo: a refund meant for a real shop must never land in it."""
    from ordersync.config import config_path, load_settings

    path = config_path(config)
    if path is None:
        if writes and not demo:
            raise _fail(
                ConfigError(
                    f"`ordersync {command}` needs a config: give --config FILE or set ORDERSYNC_CONFIG "
                    "(--demo runs it on the embedded demo's sandbox shops instead)"
                ),
                2,
            )
        console.print(f"[yellow]{DEMO_LINE}[/]", soft_wrap=True)
    try:
        return load_settings(path)
    except ConfigError as exc:
        raise _fail(exc, 2) from None


def start_embedded_sandbox(settings: Settings, stack: ExitStack) -> Settings:
    """Serve a sandbox shop for each configured shop and point the shop at it, for this run only."""
    from ordersync.sandbox.server import start_shop_sandbox

    shops = []
    for shop in settings.shops:
        base_url = stack.enter_context(
            start_shop_sandbox(shop, orders=settings.sandbox.orders, seed=settings.sandbox.seed)
        )
        update: dict[str, object] = {"base_url": base_url}
        admin = getattr(shop, "admin_api", None)
        if admin is not None:  # the sandbox serves the v4 admin API on the same port
            update["admin_api"] = admin.model_copy(update={"base_url": base_url})
        shops.append(shop.model_copy(update=update))
    console.print(f"[dim]embedded sandbox: {settings.sandbox.orders} orders per shop on loopback[/]")
    return settings.model_copy(update={"shops": shops})


class _RichProgress:
    """One bar per shop: pages, orders and orders/s as the pages arrive."""

    def __init__(self, progress: Progress, shop: str):
        self.progress = progress
        self.task: TaskID = progress.add_task(shop, total=None, pages=0, rate=0.0)
        self.pages = 0
        self.orders = 0
        self.started = time.perf_counter()

    def __call__(self, orders: int, total: int) -> None:
        self.pages += 1
        self.orders += orders
        elapsed = time.perf_counter() - self.started
        self.progress.update(
            self.task,
            completed=self.orders,
            total=max(total, self.orders),
            pages=self.pages,
            rate=self.orders / elapsed if elapsed else 0.0,
        )


def _verified(stats: RunStats) -> str:
    scan = stats.details.get("scan")
    if scan is None:
        return "-"
    if scan.get("complete"):
        return (
            f"yes ({len(scan.get('passes', []))} pass)"
            if len(scan.get("passes", [])) == 1
            else (f"yes ({len(scan['passes'])} passes)")
        )
    return (
        "sample"
        if stats.details.get("sample") and stats.incomplete is None
        else (f"[bold red]NO: {scan.get('unverified', 0):,} unverified[/]")
    )


def _summary(results: list[RunStats], mirror: Path, seconds: float, what: str = "backfill") -> Table:
    """Metrics down, shops across: stays readable in an 80-column terminal."""
    from rich.table import Table

    table = Table(title=f"{what} into {mirror}", title_justify="left")
    table.add_column("")
    for s in results:
        table.add_column(s.shop, justify="right")
    rows = [
        ("pages", "pages"),
        ("fetched", "fetched"),
        ("loaded (new or changed)", "loaded"),
        ("unchanged", "unchanged"),
        ("quarantined", "quarantined"),
        ("skipped (--since)", "skipped"),
        ("retries", "retries"),
    ]
    for label, attr in rows:
        table.add_row(label, *[f"{getattr(s, attr):,}" for s in results])
    if any("scan" in s.details for s in results):
        table.add_row("listing verified", *[_verified(s) for s in results])
    if any("resumed_from" in s.details for s in results):
        table.add_row("resumed from", *[f"{s.details.get('resumed_from', '-')}" for s in results])
    if any("disappeared" in s.details for s in results):
        table.add_row("left the listing", *[f"{s.details.get('disappeared', '-')}" for s in results])
    if any("notes_checked" in s.details for s in results):
        table.add_row("open orders' notes read", *[f"{s.details.get('notes_checked', '-')}" for s in results])
    table.add_row("requests", *[f"{s.details.get('requests', 0):,}" for s in results])
    table.add_row("seconds", *[f"{s.seconds:.2f}" for s in results])
    table.add_row("orders/s", *[f"{s.orders_per_second:,.0f}" for s in results])
    if len(results) > 1:
        table.caption = (
            f"{sum(s.fetched for s in results):,} orders from {len(results)} shops in {seconds:.2f}s"
        )
    return table


def _open_store(settings: Settings) -> StateStore:
    """The state store ready for a run, or exit 2 naming what is wrong (never the URL's password)."""
    try:
        return settings.state.open_ready()
    except ConfigError as exc:
        raise _fail(exc, 2) from None
    except Exception as exc:  # a database that cannot be reached
        raise _fail(OrderSyncError(f"state store: {type(exc).__name__}: {exc}"), 2) from None


def _progress(no_progress: bool) -> Progress:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("orders"),
        TextColumn("{task.fields[pages]} pages"),
        TextColumn("{task.fields[rate]:,.0f} orders/s"),
        TimeElapsedColumn(),
        console=console,
        disable=no_progress,
        transient=False,
    )


class Stopped(Exception):
    """SIGTERM or SIGINT reached a command that runs shops."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class _Signals:
    """SIGTERM and SIGINT while a command runs shops: the run in flight is cancelled, so it records
    itself 'abandoned' behind its last committed checkpoint, no later shop starts, and the command
    exits 128 + the signal (143, 130), as the daemon stops. A second signal stops the process the
    default way. The mapping workers ignore both; the run shuts them down."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.received: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[object] | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> _Signals:
        self._previous = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}
        return self

    def __exit__(self, *_: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]

    def _handle(self, signum: int, _frame: object) -> None:
        if self.received is not None:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        self.received = signum
        log.warning("cli.stopping", signal=signal.Signals(signum).name)
        if self._loop is not None and self._task is not None:
            self._loop.call_soon_threadsafe(self._task.cancel)

    def run(self, work: Callable[[], Awaitable[T]]) -> T:
        """``work`` in its own event loop; raises Stopped if a signal came before or during it."""
        if self.received is not None:
            raise Stopped(self.received)

        async def main() -> T:
            self._loop, self._task = asyncio.get_running_loop(), asyncio.current_task()
            try:
                return await work()
            except asyncio.CancelledError:
                if self.received is not None:
                    raise Stopped(self.received) from None
                raise
            finally:
                self._loop = self._task = None

        return asyncio.run(main())


def _run_shops(
    what: str,
    config: Path | None,
    shop: list[str] | None,
    no_progress: bool,
    run: Callable[[ShopConfig, Settings, Mirror, StateStore, ProgressCallback], Awaitable[RunStats]],
) -> list[RunStats]:
    """Load the config, open the store, serve the embedded sandbox if asked, run each shop in turn.
    A shop that fails does not stop the others: every shop is tried, the failures are listed, and
    the exit code is 1 if any failed or could not prove its listing complete. A shop another process
    is running is skipped with a line naming that process (not a failure: it is being synced)."""
    from ordersync.state.leases import ShopBusy

    settings = settings_for(config, what)
    try:
        selected = [settings.shop(name) for name in shop] if shop else list(settings.shops)
        settings.mirror.preflight()
    except ConfigError as exc:
        raise _fail(exc, 2) from None
    store = _open_store(settings)
    mirror = settings.mirror.open()
    results: list[RunStats] = []
    failed: list[tuple[str, str]] = []
    busy: list[tuple[str, str]] = []
    stopped: Stopped | None = None
    started = time.perf_counter()
    try:
        with ExitStack() as stack, _Signals() as signals:
            if settings.sandbox.enabled:
                settings = start_embedded_sandbox(settings, stack)
                selected = [settings.shop(s.name) for s in selected]
            with _progress(no_progress) as progress:
                for shop_config in selected:
                    callback = _RichProgress(progress, shop_config.name)
                    try:
                        results.append(
                            signals.run(
                                lambda s=shop_config, c=callback: run(s, settings, mirror, store, c)  # type: ignore[misc]
                            )
                        )
                    except Stopped as exc:
                        stopped = exc
                        break
                    except ShopBusy as exc:
                        busy.append((shop_config.name, exc.holder.describe()))
                    except OrderSyncError as exc:
                        failed.append((shop_config.name, str(exc)))
                    except Exception as exc:  # a defect in one shop's run must not cost the others
                        log.error("run.crashed", shop=shop_config.name, exc_info=True)
                        failed.append((shop_config.name, f"{type(exc).__name__}: {exc}"))
            if stopped is None:
                try:
                    signals.run(lambda: _write_back_async(settings, store, mirror, selected))
                except Stopped as exc:
                    stopped = exc
                except OrderSyncError as exc:
                    failed.append(("write-back", str(exc)))
    finally:
        store.dispose()
    if results:
        out.print(_summary(results, settings.mirror.path, time.perf_counter() - started, what))
    quarantined = sum(s.quarantined for s in results)
    if quarantined:
        console.print(
            f"[yellow]{quarantined} record(s) quarantined:[/] see the `quarantine` table in "
            f"{settings.mirror.path} (raw payload, reason and field path)."
        )
    incomplete = [s for s in results if s.incomplete]
    for stats in incomplete:
        console.print(f"[bold red]INCOMPLETE[/] {escape(stats.shop)}: {escape(stats.incomplete or '')}")
    for name, holder in busy:
        console.print(f"[yellow]SKIPPED[/] {escape(name)}: being synced by {escape(holder)}")
    for name, error in failed:
        console.print(f"[bold red]FAILED[/] {escape(name)}: {escape(error)}")
    if stopped is not None:
        console.print(
            f"[yellow]stopped by {stopped}:[/] the run in flight is recorded 'abandoned'; what it "
            "committed is kept and the next run resumes from its last checkpoint"
        )
        raise typer.Exit(128 + stopped.signum)
    if incomplete or failed:
        raise typer.Exit(1)
    return results


async def _write_back_async(
    settings: Settings, store: StateStore, mirror: Mirror, shops: list[ShopConfig]
) -> None:
    """Route what the shops just synced changed and apply what the outbox holds (if routes exist)."""
    from ordersync.writeback.service import has_work, write_back

    if not has_work(settings, store):
        return
    stats = await write_back(settings, store, mirror, shops)
    console.print(f"write-back: {escape(stats.summary())}")


ShopOption = Annotated[list[str] | None, typer.Option("--shop", "-s", help="Only this shop (repeatable).")]
NoProgress = Annotated[bool, typer.Option("--no-progress", help="No progress bar.")]


@app.command()
def backfill(
    config: ConfigOption = None,
    shop: ShopOption = None,
    since: Annotated[
        str | None, typer.Option(help="Only orders created at or after this UTC date/time.")
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Stop after this many orders per shop.")] = None,
    restart: Annotated[
        bool, typer.Option("--restart", help="Start from the first page even if a backfill was cut short.")
    ] = False,
    log_json: LogJson = False,
    no_progress: NoProgress = False,
) -> None:
    """Mirror every order of the configured shops into DuckDB. Idempotent (re-running rewrites only
    what changed) and resumable (a backfill cut short starts again near where it stopped)."""
    from ordersync.sync.backfill import backfill_shop

    _configure_logging(json=log_json)
    since_at = _parse_since(since)
    _run_shops(
        "backfill",
        config,
        shop,
        no_progress,
        lambda shop_config, settings, mirror, store, progress: backfill_shop(
            shop_config,
            settings,
            mirror,
            since=since_at,
            limit=limit,
            progress=progress,
            store=store,
            restart=restart,
        ),
    )


@app.command()
def sync(
    config: ConfigOption = None,
    shop: ShopOption = None,
    once: Annotated[
        bool, typer.Option("--once", help="One run per shop, then exit (`ordersync run` keeps going).")
    ] = True,
    log_json: LogJson = False,
    no_progress: NoProgress = False,
) -> None:
    """One incremental run per shop: what changed since the last run reaches the mirror. A shop never
    backfilled is backfilled first."""
    from ordersync.sync.incremental import sync_shop

    _configure_logging(json=log_json)
    _run_shops(
        "sync",
        config,
        shop,
        no_progress,
        lambda shop_config, settings, mirror, store, progress: sync_shop(
            shop_config, settings, mirror, store, progress=progress
        ),
    )


@app.command()
def sandbox(
    port: Annotated[int, typer.Option(help="Port of the WebCommander sandbox.")] = 8701,
    woo_port: Annotated[int, typer.Option(help="Port of the WooCommerce sandbox.")] = 8702,
    only: Annotated[
        str | None, typer.Option(help="Serve one shop only: webcommander or woocommerce.")
    ] = None,
    host: Annotated[str, typer.Option(help="Loopback address to listen on.")] = "127.0.0.1",
    orders: Annotated[int, typer.Option(min=0, help="Generated orders per shop.")] = 2000,
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same shops.")] = 42,
    timezone: Annotated[
        str, typer.Option(help="The WebCommander shop's timezone (its timestamps carry none).")
    ] = "Australia/Melbourne",
    woo_timezone: Annotated[str, typer.Option(help="The WooCommerce shop's timezone.")] = "Europe/Berlin",
    realistic: Annotated[
        bool, typer.Option(help="WebCommander: about 10 line items and 7 KB of JSON per order.")
    ] = False,
    latency_ms: Annotated[float, typer.Option(help="Added to every response.")] = 0.0,
    shop_workers: Annotated[
        int,
        typer.Option(
            min=0,
            help="Requests served at once (PHP workers); more wait their turn, latency included (0: any).",
        ),
    ] = 0,
    rate_429: Annotated[float, typer.Option(help="Share of requests answered 429 with Retry-After.")] = 0.0,
    rate_5xx: Annotated[float, typer.Option(help="Share of requests answered 503.")] = 0.0,
    rate_timeout: Annotated[
        float, typer.Option(help="Share of requests that hang past the client timeout.")
    ] = 0.0,
    rate_html: Annotated[float, typer.Option(help="Share of requests answered with an HTML 502 page.")] = 0.0,
    outage_after: Annotated[
        int, typer.Option(min=0, help="Requests served before an outage of --outage-for seconds.")
    ] = 0,
    outage_for: Annotated[
        float, typer.Option(min=0, help="Seconds every request gets nginx's 502 page, as when PHP is down.")
    ] = 0.0,
    max_cap: Annotated[
        int, typer.Option(help="WebCommander: most orders one page returns, whatever `max` asks (0: no cap).")
    ] = 50,
    order: Annotated[
        str, typer.Option(help="WebCommander: listing order, newest or oldest first.")
    ] = "newest",
    churn: Annotated[
        int, typer.Option(help="WebCommander: this many new orders arrive while clients page.")
    ] = 0,
    churn_every: Annotated[int, typer.Option(min=1, help="WebCommander: one new order every N pages.")] = 3,
    oversized: Annotated[
        int, typer.Option(min=0, help="WebCommander: this many orders with a 200 KB customerName.")
    ] = 0,
    dst_orders: Annotated[
        int, typer.Option(min=0, help="WebCommander: orders created and updated in the autumn DST hour.")
    ] = 0,
    webhook_duplicates: Annotated[
        float, typer.Option(help="WooCommerce: share of webhook deliveries sent twice.")
    ] = 0.0,
    webhook_reorder: Annotated[
        float,
        typer.Option(help="WooCommerce: share of webhook deliveries held back and sent after the next."),
    ] = 0.0,
    webhook_forged: Annotated[
        float, typer.Option(help="WooCommerce: share of webhook deliveries signed with another secret.")
    ] = 0.0,
) -> None:
    """Serve sandbox WebCommander and WooCommerce shops on loopback until Ctrl-C (sync.example.yaml
    points at them). The WooCommerce shop speaks plain HTTP, so clients sign with OAuth 1.0a; webhooks
    registered through its REST v3 /webhooks are delivered as WooCommerce delivers them."""
    from ordersync.config import WebCommanderShop, WooCommerceShop
    from ordersync.sandbox.faults import FaultConfig
    from ordersync.sandbox.server import Oddities, Served, WebCommanderListing, serve_apps, shop_app
    from ordersync.sandbox.webcommander.app import DEFAULT_TOKEN, DEFAULT_UUID, Churn
    from ordersync.sandbox.woocommerce.app import DEFAULT_CONSUMER_KEY, DEFAULT_CONSUMER_SECRET

    if only not in (None, "webcommander", "woocommerce"):
        raise typer.BadParameter("--only takes webcommander or woocommerce")
    if order not in ("newest", "oldest"):
        raise typer.BadParameter("--order takes newest or oldest")
    _configure_logging()
    faults = FaultConfig(
        latency_ms=latency_ms,
        workers=shop_workers,
        rate_429=rate_429,
        rate_5xx=rate_5xx,
        rate_timeout=rate_timeout,
        rate_html=rate_html,
        seed=seed,
        outage_after=outage_after,
        outage_seconds=outage_for,
    )
    console.print(f"generating {orders} orders per shop (seed {seed})...")
    served: list[Served] = []
    if only in (None, "webcommander"):
        shop = WebCommanderShop(
            name="webcommander-sandbox",
            platform="webcommander",
            base_url=f"http://{host}:{port}",
            uuid=DEFAULT_UUID,
            access_token=DEFAULT_TOKEN,
            timezone=timezone,
        )
        app_ = shop_app(
            shop,
            orders=orders,
            seed=seed,
            faults=faults,
            realistic=realistic,
            prerender=True,
            listing=WebCommanderListing(
                max_cap=max_cap or None,
                order=order,
                churn=Churn(every=churn_every, count=churn) if churn else None,
            ),
            oddities=Oddities(oversized=oversized, dst_fold=dst_orders),
        )
        banner = (
            f"WebCommander sandbox: {{url}}/external/app/access/orders  uuid={DEFAULT_UUID}  "
            f"accessToken={DEFAULT_TOKEN}"
        )
        served.append(Served(app_, port, banner))
    if only in (None, "woocommerce"):
        woo = WooCommerceShop(
            name="woocommerce-sandbox",
            platform="woocommerce",
            base_url=f"http://{host}:{woo_port}",
            consumer_key=DEFAULT_CONSUMER_KEY,
            consumer_secret=DEFAULT_CONSUMER_SECRET,
            timezone=woo_timezone,
            currency="EUR",
        )
        from ordersync.sandbox.woocommerce.webhooks import WebhookFaults

        hooks = WebhookFaults(webhook_duplicates, webhook_reorder, webhook_forged, seed=seed)
        app_ = shop_app(woo, orders=orders, seed=seed, faults=faults, prerender=True, webhook_faults=hooks)
        banner = (
            f"WooCommerce sandbox: {{url}}/wp-json/wc/v3/orders and {{url}}/wc-api/v2/orders  "
            f"consumer_key={DEFAULT_CONSUMER_KEY}  consumer_secret={DEFAULT_CONSUMER_SECRET}  (OAuth 1.0a)"
        )
        served.append(Served(app_, woo_port, banner))
    try:
        serve_apps(served, host=host, ready=lambda line: out.print(escape(line), soft_wrap=True))
    except OrderSyncError as exc:
        raise _fail(exc, 1) from None


mirror_app = typer.Typer(
    no_args_is_help=True, help="The mirror: rebuild it from the shops; how analysts attach a DuckLake."
)
app.add_typer(mirror_app, name="mirror")


@mirror_app.command("rebuild")
def mirror_rebuild(
    config: ConfigOption = None,
    demo: DemoOption = False,
    log_json: LogJson = False,
    no_progress: NoProgress = False,
) -> None:
    """Make the mirror again from the shops: the file is moved aside to <file>.before-rebuild, every
    shop is backfilled into a new one, and the write-back tables are published into it. What ordersync
    needs to go on (cursors, links, outbox, quarantine) is in the state store, so nothing is lost; what
    only the old file knew (observed history, order_events) starts again from now."""
    from ordersync.config import config_path, load_settings
    from ordersync.sync.backfill import backfill_shop
    from ordersync.writeback.service import publish

    _configure_logging(json=log_json)
    if config_path(config) is None and not demo:
        settings_for(config, "mirror rebuild", writes=True)  # refuses, naming --config and --demo
    try:
        settings = load_settings(config_path(config))
    except ConfigError as exc:
        raise _fail(exc, 2) from None
    path = settings.mirror.path
    aside = path.with_name(path.name + ".before-rebuild")
    if aside.exists():
        raise _fail(ConfigError(f"{aside} exists (an earlier rebuild's file): move or delete it first"), 2)
    lake = settings.mirror.kind == "ducklake"
    if lake and settings.mirror.catalog is not None:
        raise _fail(
            ConfigError(
                "mirror rebuild moves a SQLite catalog aside; a PostgreSQL catalog is rebuilt by "
                "pointing mirror.catalog at an empty database and running this again"
            ),
            2,
        )
    _refuse_while_running(settings)
    if path.exists():
        # A lake's catalog moves with its SQLite journal files and its folder of Parquet files.
        suffixes = ("", "-wal", "-shm", ".files") if lake else ("", ".wal")
        for suffix in suffixes:
            old = path.with_name(path.name + suffix)
            if old.exists():
                old.replace(aside.with_name(aside.name + suffix))
        console.print(f"moved {escape(str(path))} aside to {escape(str(aside))}")
    _run_shops(
        "backfill",
        config,
        None,
        no_progress,
        lambda shop_config, settings, mirror, store, progress: backfill_shop(
            shop_config, settings, mirror, progress=progress, store=store, restart=True
        ),
    )
    store = _open_store(settings)
    try:
        publish(store, settings.mirror.open())
    finally:
        store.dispose()
    console.print(
        f"rebuilt {escape(str(path))}; the file before is {escape(str(aside))} (delete it when done)"
    )


def _refuse_while_running(settings: Settings) -> None:
    """A rebuild moves the file a running daemon writes: refuse while any shop's run holds a lease."""
    from ordersync.state import leases

    store = _open_store(settings)
    try:
        live = [h for s in settings.shops if (h := leases.live(store, s.name)) is not None]
    finally:
        store.dispose()
    if live:
        raise _fail(
            OrderSyncError(
                f"shop '{live[0].shop}' is being synced by {live[0].describe()}: stop the daemons "
                "before rebuilding the mirror"
            ),
            1,
        )


@mirror_app.command("attach")
def mirror_attach(config: ConfigOption = None) -> None:
    """Print the SQL an analyst runs to read a DuckLake mirror read-only (never blocking a run, never
    blocked by one), and how to read it as of an earlier snapshot. A PostgreSQL catalog's password is
    left out: libpq reads it from PGPASSWORD."""
    settings = settings_for(config, "mirror attach")
    mirror = settings.mirror
    if mirror.kind != "ducklake":
        raise _fail(
            ConfigError(
                f"mirror.kind is duckdb: open {mirror.path} with duckdb.connect(path, read_only=True); "
                "a reader holds the file while open, so runs wait for it (mirror.lock_wait)"
            ),
            2,
        )
    from ordersync.mirror.lake import LakeMirror, without_password

    lake = mirror.open()
    assert isinstance(lake, LakeMirror)
    shown = None if lake.catalog is None else without_password(lake.catalog)
    typer.echo("INSTALL ducklake; LOAD ducklake;")
    typer.echo(f"{lake.attach_sql(read_only=True, catalog=shown)};")
    typer.echo("USE lake;")
    typer.echo("-- as of a snapshot: SELECT snapshot_id, snapshot_time FROM ducklake_snapshots('lake');")
    typer.echo("-- then: SELECT count(*) FROM orders AT (VERSION => <snapshot_id>);")


db = typer.Typer(no_args_is_help=True, help="The state database: migrations and revision.")
app.add_typer(db, name="db")


@db.command("upgrade")
def db_upgrade(config: ConfigOption = None, demo: DemoOption = False) -> None:
    """Create or migrate the state database to this version's schema (safe to run again)."""
    settings = settings_for(config, "db upgrade", writes=True, demo=demo)
    try:
        store = settings.state.open()
        try:
            before, after = store.upgrade()
        finally:
            store.dispose()
    except ConfigError as exc:
        raise _fail(exc, 2) from None
    except Exception as exc:  # a database that cannot be reached or written
        raise _fail(OrderSyncError(f"state store: {type(exc).__name__}: {exc}"), 1) from None
    if before == after:
        out.print(f"state store {escape(store.shown)} is at revision {after} (current)")
    else:
        out.print(f"state store {escape(store.shown)} upgraded from {before or '(empty)'} to {after}")


@db.command("current")
def db_current(config: ConfigOption = None) -> None:
    """Show the state database's revision and whether it is the one this version needs."""
    from ordersync.state.store import head_revision

    settings = settings_for(config, "db current")
    try:
        store = settings.state.open()
        try:
            current = store.current_revision()
        finally:
            store.dispose()
    except ConfigError as exc:
        raise _fail(exc, 2) from None
    head = head_revision()
    state = "current" if current == head else f"needs `ordersync db upgrade` to {head}"
    out.print(f"state store {escape(store.shown)}: revision {current or '(empty)'} ({state})")
    if current != head:
        raise typer.Exit(1)


@app.command("run")
def run_command(
    config: ConfigOption = None,
    shop: Annotated[
        list[str] | None, typer.Option("--shop", "-s", help="Only this shop (repeatable).")
    ] = None,
    log_json: LogJson = False,
) -> None:
    """Sync each shop on its schedule until SIGTERM or Ctrl-C (runs in flight stop at a checkpoint)."""
    from ordersync.daemon import serve

    settings = settings_for(config, "run")
    _configure_logging(json=log_json)
    try:
        serve(settings, shops=shop, sandbox=start_embedded_sandbox)
    except ConfigError as exc:
        raise _fail(exc, 2) from None
    except OrderSyncError as exc:
        raise _fail(exc, 1) from None


@app.command("status")
def status_command(
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON on stdout, for scripts.")] = False,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="For monitoring: one line per problem; exit 0 ok, 1 warning (stale or incomplete shop), "
            "2 critical (a failed last run, dead letters).",
        ),
    ] = False,
) -> None:
    """Each shop's last run, lag, backfill, quarantine and outbox, from the state store alone."""
    import json

    from ordersync.status import collect, problems, render

    settings = settings_for(config, "status")
    try:
        store = settings.state.open_ready()
    except ConfigError as exc:
        raise _fail(exc, 2) from None
    except Exception as exc:  # a database that cannot be reached
        raise _fail(OrderSyncError(f"state store: {type(exc).__name__}: {exc}"), 2) from None
    now = datetime.now(UTC)
    try:
        statuses = collect(settings, store, now=now)
    finally:
        store.dispose()
    if check:
        found = problems(settings, statuses, now=now)
        for problem in found:
            typer.echo(f"{problem.label} {problem.shop}: {problem.text}")
        if not found:
            typer.echo(f"OK: {len(statuses)} shop(s) synced within their schedules")
        raise typer.Exit(max((p.level for p in found), default=0))
    if as_json:
        typer.echo(json.dumps({"at": now.isoformat(), "shops": [s.to_json() for s in statuses]}, indent=2))
    else:
        out.print(render(statuses, now=now))


@app.command("schema")
def schema_command(
    markdown: Annotated[bool, typer.Option("--markdown", help="The data dictionary as Markdown.")] = True,
    dbt: Annotated[
        bool, typer.Option("--dbt", help="A dbt sources.yml (dbt-duckdb) of every table and view instead.")
    ] = False,
    database: Annotated[
        str | None, typer.Option("--database", help="With --dbt: the database name dbt attaches the file as.")
    ] = None,
) -> None:
    """Print the mirror's data dictionary: every table, column and view and what it means (the same
    text is in the DuckDB file as COMMENT ON). Reads no config and no file."""
    if dbt:
        from ordersync.mirror.dbt import sources_yaml

        typer.echo(sources_yaml(database), nl=False)
        return
    from ordersync.mirror.dictionary import markdown as dictionary

    typer.echo(dictionary(), nl=False)


@app.command("check")
def check_command(
    config: ConfigOption = None,
    shop: Annotated[
        list[str] | None, typer.Option("--shop", "-s", help="Only this shop (repeatable).")
    ] = None,
) -> None:
    """Test each shop's credentials and reachability, read-only: one request per shop, no retries.
    Exit 0 when every shop answered, 1 when any did not."""
    from ordersync.check import Verdict, check_shop

    settings = settings_for(config, "check")
    try:
        selected = [settings.shop(name) for name in shop] if shop else list(settings.shops)
    except ConfigError as exc:
        raise _fail(exc, 2) from None
    with ExitStack() as stack:
        if settings.sandbox.enabled:
            settings = start_embedded_sandbox(settings, stack)
            selected = [settings.shop(s.name) for s in selected]

        async def all_shops() -> list[Verdict]:
            return list(await asyncio.gather(*(check_shop(s, settings) for s in selected)))

        verdicts = asyncio.run(all_shops())
    for verdict in verdicts:
        mark = "[green]ok[/]" if verdict.ok else "[bold red]FAILED[/]"
        out.print(
            f"{mark} {escape(verdict.shop)} ({verdict.platform}): {escape(verdict.detail)}",
            soft_wrap=True,
        )
    if not all(v.ok for v in verdicts):
        raise typer.Exit(1)


from ordersync.cli_writeback import outbox_app, push_app  # noqa: E402 - they use the helpers above

app.add_typer(outbox_app, name="outbox")
app.add_typer(push_app, name="push")
from ordersync.cli_webhooks import webhooks_app  # noqa: E402 - it uses the helpers above

app.add_typer(webhooks_app, name="webhooks")


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    app()
