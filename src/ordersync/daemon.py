"""``ordersync run``: sync every shop on its schedule until SIGTERM or Ctrl-C.

One APScheduler job per shop. A shop's runs never overlap; ticks that fall due while a run is still
going are coalesced into one run started as soon as it ends. Shops run side by side, so a slow shop
does not hold the others back; the mirror serialises their DuckDB writes itself. A failed run is
recorded and logged by ``sync_shop`` and retried on the next tick. Stopping cancels the runs in
flight; each records itself 'abandoned' with its checkpoint behind the last committed batch, so the
next start resumes from there.
"""

from __future__ import annotations

import asyncio
import logging
import math
import signal
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from concurrent.futures.process import BrokenProcessPool
from contextlib import ExitStack
from datetime import UTC, datetime
from typing import Any

import httpx
import structlog
from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    JobEvent,
)
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger

from ordersync.config import Schedule, Settings, ShopConfig, WooCommerceShop
from ordersync.errors import ConfigError, OrderSyncError
from ordersync.state.leases import ShopBusy
from ordersync.state.schedules import claim
from ordersync.state.store import StateStore
from ordersync.sync.incremental import sync_shop
from ordersync.sync.pipeline import mapping_pool
from ordersync.sync.sources import mapping_name

log = structlog.get_logger("ordersync.daemon")

CRON_GRACE = 60
"""Seconds a cron tick may start late (a busy loop) and still run: crontab's own resolution."""


MAINTENANCE_JOB = "(mirror maintenance)"
"""Its name in the schedule claims, beside the shops'."""
OUTBOX_JOB = "__outbox__"
WEBHOOK_TRIES = 5
"""Webhook runs of one batch of orders before they are left to the next poll."""
ROUTE_WAIT = 60.0
"""Seconds a shop's routing waits for write-back busy in another daemon before leaving it to the next run."""


def trigger_for(schedule: Schedule) -> tuple[BaseTrigger, int]:
    """The trigger and its misfire grace: a late tick still runs until the next one is due."""
    if schedule.interval is not None:
        return IntervalTrigger(seconds=schedule.interval, timezone=UTC), max(1, math.ceil(schedule.interval))
    assert schedule.cron is not None  # Schedule requires exactly one
    return schedule.cron_trigger(), CRON_GRACE


def _has_webhooks(shops: list[ShopConfig]) -> bool:
    """The receiver is served for WooCommerce shops; a shop without a secret (in the config, or kept
    by `webhooks install`, which may come while the daemon runs) answers 404."""
    return any(isinstance(s, WooCommerceShop) for s in shops)


def describe(schedule: Schedule) -> str:
    return f"every {schedule.interval:g}s" if schedule.interval is not None else f"cron {schedule.cron} UTC"


class _Daemon:
    """The scheduler, the shared store and pool, and the runs in flight."""

    def __init__(
        self,
        settings: Settings,
        shops: list[ShopConfig],
        store: StateStore,
        transport: httpx.AsyncBaseTransport | None,
    ):
        self.settings = settings
        self.shops = shops
        self.store = store
        self.transport = transport
        self.pool: Executor | None = mapping_pool(settings.workers, {mapping_name(shop) for shop in shops})
        self.running: dict[asyncio.Task[Any], str] = {}
        self.behind: set[str] = set()
        self.targets: dict[str, set[str]] = {}
        """Orders webhook deliveries named, per shop, waiting for that shop's webhook run."""
        self.webhook_runs: dict[str, asyncio.Task[None]] = {}
        self.shop_locks: dict[str, asyncio.Lock] = {}
        """A shop's scheduled and webhook runs in this process one at a time (the lease does it
        across processes, but a run would meet its own process's lease as busy)."""
        self.stopping = False
        self.published = False
        self.writeback = asyncio.Lock()
        """Routing and draining both move tracked order states: one at a time."""
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self.scheduler.add_listener(self._skipped, EVENT_JOB_MAX_INSTANCES)
        self.scheduler.add_listener(self._missed, EVENT_JOB_MISSED)
        self.scheduler.add_listener(self._ended, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)

    def start(self) -> None:
        now = datetime.now(UTC)
        for shop in self.shops:
            trigger, grace = trigger_for(shop.schedule)
            self.scheduler.add_job(
                self.tick,
                trigger,
                args=[shop],
                id=shop.name,
                name=f"sync {shop.name}",
                max_instances=1,
                coalesce=True,
                misfire_grace_time=grace,
                next_run_time=now,
            )
        # Always, routes or not: a push that failed for now waits here for its retry.
        self.scheduler.add_job(
            self.drain,
            IntervalTrigger(seconds=self.settings.sync.outbox.interval, timezone=UTC),
            id=OUTBOX_JOB,
            name="outbox",
            max_instances=1,
            coalesce=True,
            next_run_time=now,
        )
        if self.settings.mirror.kind == "ducklake":
            trigger, grace = trigger_for(self.settings.mirror.maintenance)
            self.scheduler.add_job(
                self.maintain,
                trigger,
                id=MAINTENANCE_JOB,
                name="mirror maintenance",
                max_instances=1,
                coalesce=True,
                misfire_grace_time=grace,
            )
        self.scheduler.start()

    async def route(self, shop: ShopConfig) -> None:
        """Queue what this shop's run changed for the shops it is linked to, then drain soon."""
        from ordersync.writeback.routing import route_shop
        from ordersync.writeback.service import writeback_lease

        if not self.settings.sync.routes:
            return
        try:
            async with self.writeback, writeback_lease(self.store, "route", ROUTE_WAIT):
                await asyncio.to_thread(route_shop, self.settings, self.store, shop)
        except ShopBusy as exc:  # another daemon kept write-back busy: the cursor keeps the changes
            log.warning("daemon.routing_deferred", shop=shop.name, holder=exc.holder.describe())
        except Exception as exc:  # the sync itself went well; the outbox drains what is queued
            log.error("daemon.routing_failed", shop=shop.name, error=str(exc), exc_info=True)
        if self.scheduler.get_job(OUTBOX_JOB) is not None:
            self.scheduler.modify_job(OUTBOX_JOB, next_run_time=datetime.now(UTC))

    async def drain(self) -> None:
        """Apply what the outbox holds that is due; failures stay queued with their error."""
        from ordersync.writeback.service import drain_outbox, publish

        if self.stopping:
            return
        task = asyncio.current_task()
        assert task is not None
        self.running[task] = OUTBOX_JOB
        try:
            async with self.writeback:
                # wait=0: a daemon draining elsewhere is doing this job's work.
                stats = await drain_outbox(self.settings, self.store, transport=self.transport, wait=0)
                if stats.as_dict() or self.published is False:
                    # The mirror is opened only when there is something new to show in it.
                    await asyncio.to_thread(publish, self.store, self.settings.mirror.open())
                    self.published = True
            if stats.as_dict():
                log.info("daemon.outbox", **stats.as_dict())
        except asyncio.CancelledError:
            if not self.stopping:
                raise
        except ShopBusy as exc:
            log.debug("daemon.outbox_busy", holder=exc.holder.describe())
        except Exception as exc:
            log.error("daemon.outbox_failed", error=str(exc), error_type=type(exc).__name__)
        finally:
            self.running.pop(task, None)

    async def maintain(self) -> None:
        """The lake's upkeep (merge small files, expire old snapshots, delete unread files), on one
        daemon of the cluster per firing: the same claim as a shop's firing, under its own name."""
        from ordersync.mirror.lake import LakeMirror

        if self.stopping:
            return
        mirror = self.settings.mirror
        period = mirror.maintenance.until_next(datetime.now(UTC))
        if not await asyncio.to_thread(claim, self.store, MAINTENANCE_JOB, period):
            return
        lake = mirror.open()
        assert isinstance(lake, LakeMirror)
        try:
            await asyncio.to_thread(lake.maintain, mirror.keep_snapshots)
        except Exception as exc:
            log.error("daemon.maintenance_failed", error=str(exc), error_type=type(exc).__name__)

    async def check_webhooks(self, shop: ShopConfig) -> None:
        """One request after a run of a shop with installed webhooks: is WooCommerce still sending
        them? It disables a webhook after repeated failed deliveries; `status` then says so."""
        from ordersync.state import webhooks
        from ordersync.webhooks.manage import list_webhooks, shop_status

        if not isinstance(shop, WooCommerceShop):
            return
        await asyncio.to_thread(webhooks.prune, self.store, shop.name)  # deliveries over 30 days old
        if shop.api_version != "v3":
            return
        installed = (await asyncio.to_thread(webhooks.installed, self.store)).get(shop.name)
        if installed is None:
            return
        try:
            found = await list_webhooks(shop, self.settings.http, transport=self.transport)
        except Exception as exc:  # the run went well; the check is news, not work
            log.warning("daemon.webhooks_unchecked", shop=shop.name, error=str(exc))
            return
        status = shop_status(found, installed.delivery_url) or "missing"
        if status != "active":
            log.warning(
                "daemon.webhooks_not_active", shop=shop.name, status=status, fix="ordersync webhooks install"
            )
        await asyncio.to_thread(webhooks.note_shop_status, self.store, shop.name, status)

    def webhook(self, shop: str, order_id: str | None) -> None:
        """A verified delivery named an order: read it now, in a webhook run beside the schedule (which
        it leaves alone, so the poll stays the net under every delivery)."""
        config = next((s for s in self.shops if s.name == shop), None)
        if self.stopping or config is None or order_id is None or not order_id.isdigit():
            return
        self.targets.setdefault(shop, set()).add(order_id)
        log.info("daemon.webhook_sync", shop=shop, order=order_id)
        running = self.webhook_runs.get(shop)
        if running is None or running.done():
            self.webhook_runs[shop] = asyncio.get_running_loop().create_task(self._webhook_runs(config))

    def _shop_lock(self, shop: str) -> asyncio.Lock:
        return self.shop_locks.setdefault(shop, asyncio.Lock())

    async def _sync_and_route(self, shop: ShopConfig, only: list[str] | None = None) -> None:
        """One run of the shop (``only``: just these orders), then routing what it changed."""
        async with self._shop_lock(shop.name):
            await sync_shop(
                shop,
                self.settings,
                self.settings.mirror.open(),
                self.store,
                transport=self.transport,
                pool=self.pool,
                only=only,
            )
            await self.route(shop)

    async def _webhook_runs(self, shop: ShopConfig) -> None:
        """Runs reading just the named orders, until none wait. A failed or refused run puts its
        orders back and tries again a few times; after that the next poll reads them anyway."""
        task = asyncio.current_task()
        assert task is not None
        self.running[task] = f"webhook:{shop.name}"
        failures = 0
        try:
            while not self.stopping and self.targets.get(shop.name):
                ids = sorted(self.targets.pop(shop.name), key=int)
                try:
                    await self._sync_and_route(shop, only=ids)
                    failures = 0
                except asyncio.CancelledError:
                    if not self.stopping:
                        raise
                    return
                except Exception as exc:  # a busy lease (another process), a shop down, ...
                    self.targets.setdefault(shop.name, set()).update(ids)
                    failures += 1
                    holder = exc.holder.describe() if isinstance(exc, ShopBusy) else None
                    if failures >= WEBHOOK_TRIES:
                        self.targets.pop(shop.name, None)
                        log.error(
                            "daemon.webhook_run_failed",
                            shop=shop.name,
                            orders=len(ids),
                            error=str(exc),
                            left_to="the next poll",
                            holder=holder,
                        )
                        return
                    log.warning("daemon.webhook_run_retry", shop=shop.name, error=str(exc), holder=holder)
                    await asyncio.sleep(min(30.0, 2.0**failures))
        finally:
            self.running.pop(task, None)

    async def tick(self, shop: ShopConfig) -> None:
        if self.stopping:
            return  # a tick created in the loop turn that saw the signal: its pool is already gone
        now = datetime.now(UTC)
        if not await asyncio.to_thread(claim, self.store, shop.name, shop.schedule.until_next(now)):
            # Another daemon sharing the state store took this period's firing.
            log.debug("daemon.firing_taken", shop=shop.name)
            return
        task = asyncio.current_task()
        assert task is not None
        self.running[task] = shop.name
        try:
            await self._sync_and_route(shop)
            await self.check_webhooks(shop)
        except asyncio.CancelledError:
            if not self.stopping:
                raise
            # Our own stop: sync_shop has recorded the run 'abandoned'; end the job quietly.
        except ShopBusy as exc:
            log.warning("daemon.shop_busy", shop=shop.name, holder=exc.holder.describe(), retry="next tick")
        except Exception as exc:
            # sync_shop recorded and logged the run; this says the daemon carries on.
            trace = not isinstance(exc, OrderSyncError)  # a bug, not a shop or config problem
            log.error(
                "daemon.run_failed",
                shop=shop.name,
                error=str(exc),
                error_type=type(exc).__name__,
                retry="next tick",
                exc_info=trace,
            )
            if isinstance(exc, BrokenProcessPool) and self.pool is not None:
                # A worker died (out of memory, killed): every later run would fail on this pool.
                self.pool.shutdown(wait=False, cancel_futures=True)
                self.pool = mapping_pool(self.settings.workers, {mapping_name(shop) for shop in self.shops})
        finally:
            self.running.pop(task, None)

    def _skipped(self, event: JobEvent) -> None:
        if event.job_id not in self.behind:
            log.info("daemon.tick_coalesced", shop=event.job_id, reason="the previous run is still going")
        self.behind.add(event.job_id)

    def _missed(self, event: JobEvent) -> None:
        log.warning("daemon.tick_missed", shop=event.job_id, scheduled=event.scheduled_run_time.isoformat())

    def _ended(self, event: JobEvent) -> None:
        # Called once the scheduler no longer counts the run, so the catch-up run is not skipped.
        if event.job_id in self.behind and not self.stopping:
            self.behind.discard(event.job_id)
            self.scheduler.modify_job(event.job_id, next_run_time=datetime.now(UTC))

    async def stop(self) -> None:
        """No new runs; cancel those in flight and wait until each has recorded itself."""
        self.stopping = True
        if self.scheduler.running:
            self.scheduler.pause()  # at once: the shutdown itself is deferred to the next loop turn
            self.scheduler.shutdown(wait=False)
        tasks = list(self.running)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.sleep(0)  # let the scheduler's deferred shutdown run on this loop
        if self.pool is not None:
            await asyncio.to_thread(self.pool.shutdown, wait=True, cancel_futures=True)


async def run_daemon(
    settings: Settings,
    *,
    shops: Sequence[str] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    store: StateStore | None = None,
) -> None:
    """Sync ``shops`` (names; all configured shops by default) on their schedules until SIGTERM or
    SIGINT. The daemon owns ``store`` (opened with ``open_ready`` when not given) and disposes of it.

    Raises ``ConfigError`` (``StateNotReadyError`` included) before anything is scheduled.
    """
    try:
        selected = [settings.shop(name) for name in shops] if shops else list(settings.shops)
        if store is None:
            store = await asyncio.to_thread(settings.state.open_ready)
    except BaseException:
        if store is not None:
            store.dispose()
        raise
    # The apscheduler logger warns in plain text about skipped and missed ticks; the daemon says so
    # itself as structured events, so keep its lines for real errors.
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    received: list[str] = []

    def on_signal(sig: signal.Signals) -> None:
        received.append(sig.name)
        stop.set()
        for s in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(s)  # a second signal stops the process the default way

    daemon: _Daemon | None = None
    ops: tuple[Any, asyncio.Task[Any]] | None = None
    try:
        if settings.ops.listen:
            from ordersync.ops import serve_ops

            def on_webhook(shop: str, order_id: str | None) -> None:
                if daemon is not None:  # before the scheduler starts, its first run reads the order
                    daemon.webhook(shop, order_id)

            # A port in use fails here, before any run.
            ops = await serve_ops(
                settings, store, on_webhook if _has_webhooks(selected) else None, {s.name for s in selected}
            )
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal, sig)
        daemon = _Daemon(settings, selected, store, transport)
        log.info(
            "daemon.start",
            shops=[
                {"shop": s.name, "platform": s.platform, "schedule": describe(s.schedule)} for s in selected
            ],
            workers=settings.workers,
            mirror=str(settings.mirror.path),
            state=store.shown,
        )
        daemon.start()
        await stop.wait()
        log.info(
            "daemon.stopping",
            signal=received[0] if received else None,
            running=sorted(daemon.running.values()),
        )
        await daemon.stop()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        if daemon is not None and not daemon.stopping:  # left by an error or a cancelled caller
            await daemon.stop()
        if ops is not None:
            server, task = ops
            server.should_exit = True
            await asyncio.gather(task, return_exceptions=True)
        store.dispose()
    log.info("daemon.stopped", signal=received[0] if received else None)


def serve(
    settings: Settings,
    *,
    shops: Sequence[str] | None = None,
    sandbox: Callable[[Settings, ExitStack], Settings] | None = None,
) -> None:
    """What ``ordersync run`` does: check the shops and the store first (a refusal costs nothing),
    start the embedded sandboxes when configured, then run the daemon until it is stopped."""
    for name in shops or ():
        settings.shop(name)
    settings.mirror.preflight()
    try:
        store = settings.state.open_ready()
    except OrderSyncError:
        raise
    except Exception as exc:  # a database that cannot be reached: unusable, like a bad config (exit 2)
        raise ConfigError(f"state store: {type(exc).__name__}: {exc}") from None
    with ExitStack() as stack:
        stack.callback(store.dispose)  # the daemon disposes of it too; once more is harmless
        if settings.sandbox.enabled and sandbox is not None:
            settings = sandbox(settings, stack)
        asyncio.run(run_daemon(settings, shops=shops, store=store))
