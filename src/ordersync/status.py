"""``ordersync status``: where each shop stands, read from the state store alone.

The DuckDB file is never opened, so a status check neither waits for a run nor blocks one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from rich import box
from rich.markup import escape
from rich.table import Table

from ordersync.config import Settings, WebCommanderShop
from ordersync.state import leases, records, schedules, webhooks
from ordersync.state.store import StateStore
from ordersync.sync.backfill import BACKFILL, ORDERS, SCAN

OUTBOX_DONE = frozenset({"done", "superseded", "dropped"})
OUTBOX_DEAD = frozenset({"dead", "failed"})
"""Outbox statuses that will not be tried again; everything neither done nor dead is still pending."""


@dataclass(frozen=True)
class BackfillProgress:
    """A backfill whose checkpoint is not done: the next run resumes it from ``position``. ``kind`` is
    'sync' for a WebCommander scan under way, which checkpoints the same way."""

    position: int | None
    started_at: datetime | None
    kind: str = "backfill"


@dataclass(frozen=True)
class ShopStatus:
    shop: str
    platform: str
    last_run: records.RunRecord | None
    """The latest run, whatever came of it (its ``details`` hold requests, cursor, notes read)."""
    last_success_at: datetime | None
    cursor_at: datetime | None
    """WooCommerce: the newest change the mirror holds; WebCommander: when the last full scan began."""
    behind_seconds: float | None
    """How old the mirror's view of the shop is: now minus the later of ``cursor_at`` and the start of
    the last successful run (which saw every change made before it began), so a quiet shop whose
    runs succeed is not shown as falling behind."""
    backfill: BackfillProgress | None
    quarantined: int
    outbox_pending: int
    outbox_dead: int
    held_by: str | None = None
    """The process running the shop now (its lease): pid, host, kind and since when; None when idle."""
    webhooks: str | None = None
    """WooCommerce's own status of the webhooks `ordersync webhooks install` registered (active,
    disabled, paused, missing), as the daemon last saw it; None: none installed."""
    last_webhook_at: datetime | None = None
    """When the last verified WooCommerce webhook delivery for the shop came (None: never)."""
    scheduled_by: str | None = None
    """The daemon that took the shop's last scheduled firing, and when the next is due (several
    daemons sharing one state store take turns)."""

    def to_json(self) -> dict[str, Any]:
        """Plain JSON types: times as ISO 8601 UTC strings."""
        return _plain(asdict(self))


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return records.aware(datetime.fromisoformat(value))
    except ValueError:
        return None


def _behind(now: datetime, cursor_at: datetime | None, last_ok_start: datetime | None) -> float | None:
    known = [t for t in (cursor_at, last_ok_start) if t is not None]
    return max(0.0, (now - max(known)).total_seconds()) if known else None


def collect(settings: Settings, store: StateStore, *, now: datetime | None = None) -> list[ShopStatus]:
    """One status per configured shop, in config order."""
    now = now or datetime.now(UTC)
    statuses = []
    firings = schedules.claims(store)
    hooks = webhooks.installed(store)
    for shop in settings.shops:
        # Runs that covered the whole shop: a webhook's run reads a few named orders, and a `--since`
        # or `--limit` sample part of the shop, so neither says the shop is current (or failing).
        last = [r for r in records.last_runs(store, shop.name, 20) if r.kind != "webhook"][:1]
        ok = [
            r
            for r in records.last_runs(store, shop.name, 40, status="ok")
            if not r.details.get("sample") and r.kind != "webhook"
        ][:1]
        cursors = records.shop_cursors(store, shop.name)
        if isinstance(shop, WebCommanderShop):
            cursor_at = _time(cursors.get(SCAN, {}).get("started_at"))
        else:
            cursor_at = _time(cursors.get(ORDERS, {}).get("modified"))
        checkpoint = cursors.get(BACKFILL)
        backfill = None
        if checkpoint is not None and not checkpoint.get("done"):
            position = checkpoint.get("position")
            if isinstance(position, dict):  # a WebCommander scan position: its offset
                position = position.get("offset")
            backfill = BackfillProgress(
                position=int(position) if position is not None else None,
                started_at=_time(checkpoint.get("started_at")),
                kind=str(checkpoint.get("kind") or "backfill"),
            )
        outbox = records.outbox_depth(store, shop.name)
        lease = leases.live(store, shop.name, now)
        firing = firings.get(shop.name)
        statuses.append(
            ShopStatus(
                shop=shop.name,
                platform=shop.platform,
                last_run=last[0] if last else None,
                last_success_at=ok[0].finished_at if ok else None,
                cursor_at=cursor_at,
                behind_seconds=_behind(now, cursor_at, ok[0].started_at if ok else None),
                backfill=backfill,
                quarantined=records.quarantine_count(store, shop.name),
                outbox_pending=sum(n for s, n in outbox.items() if s not in OUTBOX_DONE | OUTBOX_DEAD),
                outbox_dead=sum(n for s, n in outbox.items() if s in OUTBOX_DEAD),
                held_by=lease.describe() if lease is not None else None,
                last_webhook_at=webhooks.last_delivery(store, shop.name),
                webhooks=hooks[shop.name].shop_status if shop.name in hooks else None,
                scheduled_by=(
                    f"{firing.claimed_by} at {firing.claimed_at:%Y-%m-%d %H:%M:%S} UTC, next due "
                    f"{firing.next_due:%H:%M:%S}"
                    if firing is not None
                    else None
                ),
            )
        )
    return statuses


def humanize(seconds: float) -> str:
    """Two units at most (``45s``, ``2m 03s``, ``1h 02m``, ``3d 04h``): enough to judge a lag."""
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600:02d}h"


_STATUS_STYLE = {
    "ok": "green",
    "running": "cyan",
    "failed": "red",
    "incomplete": "bold red",
    "abandoned": "yellow",
}


def render(statuses: list[ShopStatus], *, now: datetime | None = None) -> Table:
    """One row per shop, readable in 80 columns (two lines each); the last failed runs' errors go below."""
    now = now or datetime.now(UTC)

    def ago(when: datetime | None) -> str:
        return f"{humanize(max(0.0, (now - when).total_seconds()))} ago" if when else "never"

    table = Table(
        title="ordersync status",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    table.add_column("shop", min_width=12, overflow="fold")
    table.add_column("last run", min_width=10, max_width=18)
    for header in ("fetched\nloaded", "last ok\nago", "behind", "backfill\nat", "quar-\nantine", "outbox"):
        table.add_column(header, justify="right", no_wrap=header != "behind")
    errors = []
    workers = [f"{s.shop}: running in {s.held_by}" for s in statuses if s.held_by]
    workers += [f"{s.shop}: last scheduled run taken by {s.scheduled_by}" for s in statuses if s.scheduled_by]
    workers += [
        f"{s.shop}: last webhook delivery {ago(s.last_webhook_at)}" for s in statuses if s.last_webhook_at
    ]
    workers += [
        f"{s.shop}: WooCommerce says its webhooks are {s.webhooks}: run `ordersync webhooks install` again"
        for s in statuses
        if s.webhooks not in (None, "active")
    ]
    for s in statuses:
        run = s.last_run
        if run is None:
            last, counts = "[dim]none yet[/]", ""
        else:
            style = _STATUS_STYLE.get(run.status, "white")
            last = f"[{style}]{escape(run.status)}[/] {escape(run.kind)}\n[dim]{ago(run.started_at)}[/]"
            counts = f"{run.fetched:,}\n{run.loaded:,}"
            if run.error and run.status != "ok":
                errors.append(f"{s.shop}: {run.error}")
        if s.backfill is None:
            backfill = ""
        else:
            backfill = f"{s.backfill.position:,}" if s.backfill.position is not None else "start"
            if s.backfill.kind != "backfill":
                backfill = f"[dim]{escape(s.backfill.kind)}[/] {backfill}"
        outbox = f"{s.outbox_pending:,}" + (f"\n[red]{s.outbox_dead:,} dead[/]" if s.outbox_dead else "")
        table.add_row(
            f"{escape(s.shop)}\n[dim]{s.platform}[/]",
            last,
            counts,
            humanize((now - s.last_success_at).total_seconds()) if s.last_success_at else "never",
            humanize(s.behind_seconds) if s.behind_seconds is not None else "[dim]no cursor[/]",
            backfill,
            f"[yellow]{s.quarantined:,}[/]" if s.quarantined else "0",
            outbox,
        )
    lines = [e if len(e) <= 300 else e[:299] + "…" for e in errors] + workers
    if lines:
        table.caption = escape("\n".join(lines))
        table.caption_justify = "left"
    return table


@dataclass(frozen=True)
class Problem:
    level: int
    """1: a warning (a stale or incomplete shop), 2: critical (a failed last run, dead letters)."""
    shop: str
    text: str

    @property
    def label(self) -> str:
        return "CRITICAL" if self.level == 2 else "WARNING"


def problems(settings: Settings, statuses: list[ShopStatus], *, now: datetime) -> list[Problem]:
    """What ``status --check`` reports and ``/readyz`` fails on, worst first."""
    found: list[Problem] = []
    by_name = {shop.name: shop for shop in settings.shops}
    for s in statuses:
        last = s.last_run
        if last is not None and last.status == "failed":
            found.append(Problem(2, s.shop, f"last run failed: {last.error or 'no error recorded'}"))
        if s.outbox_dead:
            found.append(Problem(2, s.shop, f"{s.outbox_dead:,} dead-lettered write(s) in the outbox"))
        if last is not None and last.status == "incomplete":
            found.append(Problem(1, s.shop, f"last run could not prove the listing complete: {last.error}"))
        period = by_name[s.shop].schedule.period(now)
        limit = settings.ops.stale_schedules * period
        if s.last_success_at is None:
            found.append(Problem(1, s.shop, "no successful run yet"))
        elif s.behind_seconds is not None and s.behind_seconds > limit:
            found.append(
                Problem(
                    1,
                    s.shop,
                    f"stale: the mirror is {humanize(s.behind_seconds)} behind the shop, more than "
                    f"{settings.ops.stale_schedules:g} schedule periods of {humanize(period)}",
                )
            )
    return sorted(found, key=lambda p: -p.level)
