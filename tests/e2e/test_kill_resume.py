"""Kill tests: ``ordersync backfill`` of a 20,000-order sandbox shop on loopback, SIGKILLed at random
points and run again until one run completes; then the mirror is compared with the shop order by order.

The kills of each test: one on the first list request (before any checkpoint), then three in random
order at random places: when a list request reaches a random position (pages in flight, a batch half
gathered), as soon as the checkpoint passes a random position (right after DuckDB committed a batch), and
a random delay after the checkpoint passes another (anywhere, a DuckDB write included). After every kill
the state store and the mirror are checked (the checkpoint never covers an order DuckDB does not hold, no
order twice), and the next run must start one page before the checkpoint, which the sandbox sees as its
first list request. Processes a killed run leaves behind (mapping workers) must exit by themselves.

The plan comes from a seeded ``random.Random``; the seed is printed and named in every assertion
message, and ``ORDERSYNC_KILL_SEED=<n>`` replays the plan (the timing of a kill still depends on the
machine).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import duckdb
import orjson
import pytest
import yaml
from sqlalchemy.exc import OperationalError
from starlette.types import ASGIApp, Receive, Scope, Send

from ordersync.mirror.schema import TABLES
from ordersync.platforms.webcommander.extract import resume_offset
from ordersync.sandbox.server import SandboxServer
from ordersync.sandbox.webcommander.app import DEFAULT_TOKEN, DEFAULT_UUID
from ordersync.sandbox.webcommander.app import PREFIX as WEBCOMMANDER_PREFIX
from ordersync.sandbox.webcommander.app import create_app as webcommander_app
from ordersync.sandbox.webcommander.store import WebCommanderStore
from ordersync.sandbox.woocommerce.app import DEFAULT_CONSUMER_KEY, DEFAULT_CONSUMER_SECRET
from ordersync.sandbox.woocommerce.app import create_app as woocommerce_app
from ordersync.sandbox.woocommerce.responses import V3
from ordersync.sandbox.woocommerce.store import WooCommerceStore
from ordersync.state import records
from ordersync.state.store import StateStore
from ordersync.sync.pipeline import JOB_ORDERS

ORDERS = 20_000
BATCH_ORDERS = 1000
WORKERS = 2
WAIT = 240.0
"""Seconds a run may take to reach a kill point or to finish, on a slow and busy machine."""

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


# -- the sandbox, behind a kill switch ---------------------------------------------------------------
class KillSwitch:
    """ASGI middleware in front of a sandbox shop: records each run's list requests (as the position,
    in orders, of the page asked for) and SIGKILLs the backfill when an armed position is asked for,
    before answering."""

    def __init__(self, app: ASGIApp, position: Callable[[str, dict[str, list[str]]], int | None]):
        self.app = app
        self.position = position
        self._lock = threading.Lock()
        self.requested: list[int] = []
        self._armed: tuple[int, int] | None = None
        self.fired_at: int | None = None

    def new_run(self) -> None:
        with self._lock:
            self.requested, self._armed, self.fired_at = [], None, None

    def arm(self, pid: int, at: int) -> None:
        with self._lock:
            self._armed = (pid, at)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            at = self.position(scope["path"], query)
            if at is not None:
                with self._lock:
                    self.requested.append(at)
                    if self._armed is not None and at >= self._armed[1]:
                        os.kill(self._armed[0], signal.SIGKILL)
                        self._armed, self.fired_at = None, at
        await self.app(scope, receive, send)


@dataclass
class Shop:
    """One sandbox shop as the test sees it: how to configure a backfill of it, how its checkpoint
    positions count orders, and what the mirror must hold when the backfill is done."""

    name: str
    fields: dict[str, Any]
    page_size: int
    listing: list[str]
    """Order ids in the order the backfill lists them."""
    expected: dict[str, tuple[Any, ...]]
    """Per order: what ``mirrored_sql`` must give back for it."""
    mirrored_sql: str
    children: dict[str, Counter[str]]
    """Per child table: rows per order id."""
    switch: KillSwitch
    base_url: str = ""
    webcommander: bool = True

    def covered(self, position: Any) -> int:
        """Orders before a checkpoint position (WebCommander: a scan position, whose offset counts
        orders from the head of the listing in either order; WooCommerce: the next page)."""
        if position is None:
            return 0
        if self.webcommander:
            return position["offset"] if isinstance(position, dict) else position
        return (position - 1) * self.page_size

    def start_after(self, position: Any) -> int | None:
        """Where a run resumes after a checkpoint at ``position``: one page before it (the
        documented contract), None for the first page. WebCommander: the offset its scan starts at,
        after the head page that tells the current total (so never before the second page)."""
        if position is None:
            return None
        if self.webcommander:
            return max(resume_offset(position, len(self.listing), self.page_size), self.page_size)
        return max(position - 1, 1) if position > 1 else None

    def logged_start(self, logged: Any) -> int | None:
        """The start a run logged in ``backfill.start``, as ``start_after`` counts it."""
        return self.start_after(logged) if self.webcommander else logged

    def first_asked(self, requested: list[int], start: int | None) -> int:
        """The first page a run asked for after the head page a resumed WebCommander scan reads."""
        if self.webcommander and start is not None:
            return requested[1]  # the head page, then the start page alone, then the window
        return min(requested)

    def verification(self, start: int | None) -> int:
        """Orders a resumed WebCommander run reads besides the rest of the listing: the head page and
        the whole pass that proves the listing complete after a resumed one."""
        return self.page_size + len(self.listing) if self.webcommander and start is not None else 0

    def served(self, requested: list[int]) -> int:
        """Orders the sandbox handed out for these list requests."""
        listed = len(self.listing)
        return sum(max(0, min(self.page_size, listed - at)) for at in requested)


def _webcommander_position(path: str, query: dict[str, list[str]]) -> int | None:
    if path != f"{WEBCOMMANDER_PREFIX}/orders":
        return None
    return int(query.get("offset", ["0"])[0])


def _woocommerce_position(path: str, query: dict[str, list[str]]) -> int | None:
    if path != f"{V3}/orders":
        return None
    return (int(query.get("page", ["1"])[0]) - 1) * int(query.get("per_page", ["10"])[0])


@pytest.fixture(params=["newest", "oldest"])
def webcommander(request: pytest.FixtureRequest) -> Iterator[Shop]:
    """The strict sandbox (a host capping ``max`` at 50 while 250 are asked), in both listing orders."""
    store = WebCommanderStore(orders=ORDERS, seed=3, prerender=True, listing_order=request.param)
    # The orders as the listing serves them, in its order (cheaper than copying the store's dicts).
    _, encoded = store.list_page(0, -1)
    orders = [orjson.loads(order) for order in encoded]
    switch = KillSwitch(webcommander_app(store), _webcommander_position)
    shop = Shop(
        name="wc",
        fields={
            "platform": "webcommander",
            "uuid": DEFAULT_UUID,
            "access_token": DEFAULT_TOKEN,
            "timezone": "Australia/Melbourne",
            "currency": "AUD",
            "page_size": 250,
            "concurrency": 2,
        },
        page_size=50,  # what the host returns per page, whatever `max` asks
        listing=[str(o["id"]) for o in orders],
        expected={
            str(o["id"]): (o["orderStatus"], o["paymentStatus"], Decimal(o["orderSummary"]["grandTotal"]))
            for o in orders
        },
        mirrored_sql="SELECT order_id, status_raw, payment_status_raw, total FROM orders",
        children={
            "line_items": Counter({str(o["id"]): len(o["items"]) for o in orders if o["items"]}),
            "payments": Counter(str(o["id"]) for o in orders for p in o["payments"] if p["refundId"] is None),
            "refunds": Counter(
                str(o["id"]) for o in orders for p in o["payments"] if p["refundId"] is not None
            ),
            "comments": Counter(str(o["id"]) for o in orders for _ in o["orderComment"]),
            "shipments": Counter(str(o["id"]) for o in orders for _ in o["shipments"]),
        },
        switch=switch,
    )
    with SandboxServer(switch) as server:
        shop.base_url = server.base_url
        yield shop


@pytest.fixture
def woocommerce() -> Iterator[Shop]:
    store = WooCommerceStore(orders=ORDERS, seed=5)
    listed = sorted(
        (o for o in store.orders.values() if o.status != "trash"), key=lambda o: (o.created, o.id)
    )
    switch = KillSwitch(woocommerce_app(store), _woocommerce_position)
    shop = Shop(
        name="woo",
        fields={
            "platform": "woocommerce",
            "consumer_key": DEFAULT_CONSUMER_KEY,
            "consumer_secret": DEFAULT_CONSUMER_SECRET,
            "timezone": "Europe/Berlin",
            "currency": "EUR",
            "page_size": 100,
            "concurrency": 3,
            "notes": "none",
            "refunds": True,
        },
        page_size=100,
        listing=[str(o.id) for o in listed],
        expected={
            str(o.id): (o.status, o.modified.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"), o.total)
            for o in listed
        },
        mirrored_sql=(
            "SELECT order_id, status_raw, "
            "strftime(updated_at AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%S'), total FROM orders"
        ),
        children={
            "line_items": Counter({str(o.id): len(o.lines) for o in listed if o.lines}),
            "refunds": Counter({str(o.id): len(o.refunds) for o in listed if o.refunds}),
        },
        switch=switch,
        webcommander=False,
    )
    assert any(o.refunds for o in listed), "the shop should have refunded orders to read refunds of"
    assert len(listed) < len(store.orders), "the shop should have trashed orders for the listing to leave out"
    # One server for the whole test: the payloads (links name the address) stay the same between runs.
    with SandboxServer(switch) as server:
        shop.base_url = server.base_url
        yield shop


# -- the backfill as a subprocess --------------------------------------------------------------------
@dataclass
class Kill:
    kind: str
    """'first-request', 'at-request', 'after-checkpoint' or 'after-delay'."""
    target: int = 0
    """Orders: the list request that kills ('at-request') or the checkpoint to wait for."""
    delay: float = 0.0


@dataclass
class Seen:
    """What one killed run left behind."""

    kill: Kill
    start: int | None
    position: int | None
    covered: int
    served: int
    fired_at: int | None
    seconds: float
    wal: bool
    """Whether the mirror had a write-ahead log to replay after the kill."""

    def __str__(self) -> str:
        where = f"request at {self.fired_at}" if self.fired_at is not None else f"target {self.kill.target}"
        delay = f" +{self.kill.delay:.2f}s" if self.kill.delay else ""
        return (
            f"{self.kill.kind} ({where}{delay}): started at {self.start}, killed after {self.seconds:.1f}s "
            f"with checkpoint {self.position} ({self.covered} orders), {self.served} orders served"
            f"{', DuckDB WAL left' if self.wal else ''}"
        )


def plan(rng: random.Random, listed: int) -> list[Kill]:
    """One kill before any checkpoint, then three kinds in random order at increasing random places,
    spaced so that each run has progress to make and the last leaves a third of the shop to read."""
    kinds = ["at-request", "after-checkpoint", "after-delay"]
    rng.shuffle(kinds)
    kills = [Kill("first-request")]
    for i, kind in enumerate(kinds):
        target = int(listed * (0.1 + 0.2 * i)) + rng.randrange(listed // 10)
        kills.append(Kill(kind, target, rng.uniform(0.05, 0.8) if kind == "after-delay" else 0.0))
    return kills


@dataclass
class Backfill:
    shop: Shop
    tmp_path: Path
    seed: int
    seen: list[Seen] = field(default_factory=list)
    survivors: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.mirror = self.tmp_path / "mirror.duckdb"
        self.state = self.tmp_path / "state.db"
        self.config = self.tmp_path / "sync.yaml"
        config = {
            "mirror": {"path": str(self.mirror), "batch_orders": BATCH_ORDERS},
            "state": {"url": f"sqlite:///{self.state}", "auto_upgrade": True},
            "http": {"max_retries": 2, "backoff_base": 0.01, "backoff_max": 0.05, "timeout": 20},
            "workers": WORKERS,
            "shops": [{"name": self.shop.name, "base_url": self.shop.base_url, **self.shop.fields}],
        }
        self.config.write_text(yaml.safe_dump(config))
        self._store: StateStore | None = None
        self.runs = 0
        self.process: subprocess.Popen[bytes] | None = None

    # -- reading the state store while a run writes it ----------------------------------------------
    @property
    def store(self) -> StateStore:
        if self._store is None:
            self._store = StateStore(f"sqlite:///{self.state}")
        return self._store

    def checkpoint(self) -> dict[str, Any] | None:
        if not self.state.exists():
            return None
        try:
            return records.get_cursor(self.store, self.shop.name, "backfill")
        except OperationalError:  # the first run is still creating the tables
            return None

    def position(self) -> int | None:
        checkpoint = self.checkpoint()
        return checkpoint.get("position") if checkpoint else None

    def history(self) -> list[records.RunRecord]:
        return list(reversed(records.last_runs(self.store, self.shop.name, 100)))

    def close(self) -> None:
        """Dispose of the engine; a run still going (the test failed or was interrupted) is killed
        with what it started."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
            for pid in _group_members(self.process.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        if self._store is not None:
            self._store.dispose()

    # -- runs ----------------------------------------------------------------------------------------
    def context(self) -> str:
        kills = "".join(f"\n  kill {i + 1}: {seen}" for i, seen in enumerate(self.seen))
        return f"[seed {self.seed}, {self.shop.name}]{kills}"

    def log(self, run: int) -> Path:
        return self.tmp_path / f"run-{run}.log"

    def start(self) -> subprocess.Popen[bytes]:
        self.runs += 1
        self.shop.switch.new_run()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ordersync.cli",
                "backfill",
                "--config",
                str(self.config),
                "--no-progress",
                "--log-json",
            ],
            cwd=self.tmp_path,
            stdout=(self.tmp_path / f"run-{self.runs}.out").open("wb"),
            stderr=self.log(self.runs).open("wb"),
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            # Its own process group, so that what a killed run leaves behind can be found and ended.
            start_new_session=True,
        )
        return self.process

    def tail(self) -> str:
        return self.log(self.runs).read_text(errors="replace")[-4000:]

    def events(self, run: int, event: str) -> list[dict[str, Any]]:
        found = []
        for line in self.log(run).read_text(errors="replace").splitlines():
            if line.startswith("{"):
                entry = json.loads(line)
                if entry.get("event") == event:
                    found.append(entry)
        return found

    def kill(self, process: subprocess.Popen[bytes], kill: Kill) -> None:
        """Kill the run as ``kill`` says and wait for it to be gone."""
        deadline = time.monotonic() + WAIT
        if kill.kind in ("first-request", "at-request"):
            self.shop.switch.arm(process.pid, kill.target)
        else:
            while (self.shop.covered(self.position())) < kill.target:
                if process.poll() is not None:
                    break
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"{self.context()}\nno checkpoint past {kill.target} in {WAIT}s:\n{self.tail()}"
                    )
                time.sleep(0.01)
            else:
                if kill.delay:
                    time.sleep(kill.delay)
                os.kill(process.pid, signal.SIGKILL)
        try:
            process.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            pytest.fail(f"{self.context()}\nrun {self.runs} reached no kill point ({kill}) in {WAIT}s")
        assert process.returncode == -signal.SIGKILL, (
            f"{self.context()}\nrun {self.runs} ended with {process.returncode} before the kill ({kill}):\n"
            f"{self.tail()}"
        )
        self._end_leftovers(process.pid)

    def _end_leftovers(self, group: int) -> None:
        """The killed run's mapping workers watch for their parent's death and exit, and the resource
        tracker follows them; any still alive 5 s later is ended here and fails the test at its end."""
        deadline = time.monotonic() + 5
        while (alive := _group_members(group)) and time.monotonic() < deadline:
            time.sleep(0.05)
        if alive:
            self.survivors.append(len(alive))
            for pid in alive:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def _group_members(group: int) -> list[int]:
    """Live (not zombie) processes of a process group, from /proc (none found without it)."""
    members: list[int] = []
    if not Path("/proc").is_dir():
        return members
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] != "Z" and int(fields[2]) == group:
            members.append(int(entry.name))
    return members


# -- the mirror --------------------------------------------------------------------------------------
def _query(path: Path, sql: str) -> list[tuple[Any, ...]]:
    # Read-only: DuckDB replays the write-ahead log a killed run left without checkpointing it, so the
    # next run still finds the file as the kill left it.
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql).fetchall()


def _order_ids(path: Path) -> tuple[list[str], int]:
    if not path.exists():
        return [], 0
    rows = _query(path, "SELECT order_id FROM orders")
    return [r[0] for r in rows], len(rows)


def _child_key(table: str) -> list[str]:
    columns = [name for name, _ in TABLES[table]]
    return ["shop", "order_id", *(c for c in ("kind", "refund_position", "position") if c in columns)]


def assert_mirror_matches_shop(backfill: Backfill) -> None:
    shop, path, context = backfill.shop, backfill.mirror, backfill.context()
    with duckdb.connect(str(path), read_only=True) as con:
        ((count, distinct),) = con.execute("SELECT count(*), count(DISTINCT order_id) FROM orders").fetchall()
        assert count == distinct, f"{context}\n{count - distinct} order rows are duplicates"
        mirrored = {row[0]: tuple(row[1:]) for row in con.execute(shop.mirrored_sql).fetchall()}
        missing = set(shop.expected) - set(mirrored)
        extra = set(mirrored) - set(shop.expected)
        assert not missing and not extra, (
            f"{context}\n{len(missing)} orders missing (e.g. {sorted(missing)[:5]}), "
            f"{len(extra)} not listed by the shop (e.g. {sorted(extra)[:5]})"
        )
        wrong = {oid: (mirrored[oid], want) for oid, want in shop.expected.items() if mirrored[oid] != want}
        assert not wrong, f"{context}\n{len(wrong)} orders differ from the shop: {list(wrong.items())[:5]}"

        for table in TABLES:
            if table == "orders":
                continue
            key = ", ".join(_child_key(table))
            (dupes,) = con.execute(
                f"SELECT count(*) FROM (SELECT {key} FROM {table} GROUP BY ALL HAVING count(*) > 1)"
            ).fetchone()  # type: ignore[misc]
            assert dupes == 0, f"{context}\n{table}: {dupes} keys ({key}) have more than one row"
            (orphans,) = con.execute(
                f"SELECT count(*) FROM {table} t ANTI JOIN orders o USING (platform, shop, order_id)"
            ).fetchone()  # type: ignore[misc]
            assert orphans == 0, f"{context}\n{table}: {orphans} rows belong to no order"
        for table, want in shop.children.items():
            got = Counter(dict(con.execute(f"SELECT order_id, count(*) FROM {table} GROUP BY 1").fetchall()))
            diff = {oid: (got[oid], want[oid]) for oid in set(got) | set(want) if got[oid] != want[oid]}
            assert not diff, (
                f"{context}\n{table}: rows per order differ (mirror, shop): {list(diff.items())[:5]}"
            )

        tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        if "order_events" in tables:
            events = con.execute(
                "SELECT kind, count(*), count(DISTINCT order_id) FROM order_events GROUP BY 1"
            ).fetchall()
            listed = len(shop.expected)
            assert events == [("new", listed, listed)], (
                f"{context}\nan order read again after a kill must not make another event: {events}"
            )


# -- the test ----------------------------------------------------------------------------------------
def _seed() -> int:
    given = os.environ.get("ORDERSYNC_KILL_SEED")
    return int(given) if given else random.SystemRandom().randrange(1 << 32)


def _waste_limit(shop: Shop) -> int:
    """Orders a killed run may have been served beyond its checkpoint: the batch being written, the
    batch being gathered, the jobs being mapped (pages go to a worker together, at least JOB_ORDERS
    orders a job, so each holds less than JOB_ORDERS and a page), the group of pages being gathered
    for the next job, and the pages being fetched."""
    job = max(shop.page_size, JOB_ORDERS + shop.page_size - 1)
    fetching = (int(shop.fields["concurrency"]) + 2) * shop.page_size
    return 2 * BATCH_ORDERS + (2 * WORKERS + 2) * job + JOB_ORDERS + fetching


def check_killed_run(backfill: Backfill, seen: Seen, checkpoint: dict[str, Any] | None) -> None:
    """What a killed run must leave: a start one page before the previous checkpoint, a checkpoint
    where the kind of kill puts it and never past what DuckDB holds, no order twice, the run still
    marked running, and few orders read past the checkpoint."""
    shop, kill, run, context = backfill.shop, seen.kill, backfill.runs, backfill.context()
    requested = shop.switch.requested

    (start_event,) = backfill.events(run, "backfill.start")
    assert shop.logged_start(start_event["start"]) == seen.start, f"{context}\nrun {run}: {start_event}"
    first = shop.covered(seen.start)
    assert requested and shop.first_asked(requested, seen.start) == first, (
        f"{context}\nrun {run} should have asked first for the page at {first}: {sorted(requested)[:3]}"
    )
    if seen.start is not None:
        # A WooCommerce checkpoint at page 2 resumes one page before it: page 1, which is offset 0.
        assert first > 0 or (not shop.webcommander and seen.start == 1), (
            f"{context}\nrun {run} started from zero though a checkpoint existed"
        )
        assert backfill.events(run, "backfill.resume"), f"{context}\nrun {run} logged no resume"

    if kill.kind == "first-request":
        assert checkpoint is None, f"{context}\na checkpoint before any page was answered: {checkpoint}"
    elif kill.kind == "at-request":
        assert seen.fired_at is not None and seen.covered <= seen.fired_at, (
            f"{context}\nthe checkpoint is past the pages served"
        )
    else:
        assert seen.covered >= kill.target, f"{context}\nkilled before the checkpoint it waited for"
    assert checkpoint is None or checkpoint["done"] is False, f"{context}\n{checkpoint}"

    history = backfill.history()
    assert [r.status for r in history] == ["abandoned"] * (run - 1) + ["running"], (
        f"{context}\n{[(r.id, r.status, r.error) for r in history]}"
    )

    ids, rows = _order_ids(backfill.mirror)
    held = set(ids)
    assert rows == len(held), f"{context}\nthe mirror holds {rows - len(held)} orders twice after the kill"
    absent = [oid for oid in shop.listing[: seen.covered] if oid not in held]
    assert not absent, f"{context}\nthe checkpoint covers {len(absent)} orders DuckDB lacks: {absent[:5]}"
    assert held <= set(shop.listing), f"{context}\nthe mirror holds orders the shop never listed"

    waste = seen.served - (seen.covered - first) - (shop.page_size if shop.webcommander and seen.start else 0)
    assert waste <= _waste_limit(shop), (
        f"{context}\nrun {run} was served {waste} orders past its checkpoint (more than {_waste_limit(shop)})"
    )


def kill_and_resume(shop: Shop, tmp_path: Path) -> None:
    seed = _seed()
    kills = plan(random.Random(seed), len(shop.listing))
    print(f"\n{shop.name}: seed {seed}, plan {kills}")
    backfill = Backfill(shop, tmp_path, seed)
    began = time.monotonic()
    try:
        position: int | None = None
        started_at: str | None = None
        for planned in kills:
            # Past the checkpoint the run starts from, so that each run makes progress.
            floor = shop.covered(position) + BATCH_ORDERS
            kill = (
                planned
                if planned.kind == "first-request"
                else replace(planned, target=max(planned.target, floor))
            )
            run_began = time.monotonic()
            backfill.kill(backfill.start(), kill)
            wal = Path(f"{backfill.mirror}.wal").exists()
            checkpoint = backfill.checkpoint()
            start, position = shop.start_after(position), checkpoint["position"] if checkpoint else None
            seen = Seen(
                kill=kill,
                start=start,
                position=position,
                covered=shop.covered(position),
                served=shop.served(shop.switch.requested),
                fired_at=shop.switch.fired_at,
                seconds=time.monotonic() - run_began,
                wal=wal,
            )
            backfill.seen.append(seen)
            print(f"  {seen}")
            check_killed_run(backfill, seen, checkpoint)
            if checkpoint is not None:
                # Kept from the first attempt: the incremental sync will start from it.
                assert started_at in (None, checkpoint["started_at"]), f"{backfill.context()}\n{checkpoint}"
                started_at = checkpoint["started_at"]

        # The last run completes, from where the last kill left off.
        start = shop.start_after(position)
        process = backfill.start()
        try:
            process.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            pytest.fail(f"{backfill.context()}\nthe last run did not finish in {WAIT}s")
        context = backfill.context()
        assert process.returncode == 0, f"{context}\nthe last run failed:\n{backfill.tail()}"
        final_served = shop.served(shop.switch.requested)
        print(f"  last run: started at {start}, {final_served} orders served")
        assert start is not None and started_at is not None, f"{context}\nno checkpoint to resume from"
        assert shop.first_asked(shop.switch.requested, start) == shop.covered(start), (
            f"{context}\nthe last run's first page"
        )

        history = backfill.history()
        assert [r.status for r in history] == ["abandoned"] * len(kills) + ["ok"], (
            f"{context}\n{[(r.id, r.status, r.error) for r in history]}"
        )
        assert all(r.error == "the process stopped before the run ended" for r in history[:-1])
        last = history[-1]
        assert last.details.get("resumed_from") == start, f"{context}\nthe last run: {last.details}"
        expected_fetch = len(shop.listing) - shop.covered(start) + shop.verification(start)
        assert last.fetched == expected_fetch, f"{context}\nthe last run: {last}"

        checkpoint = backfill.checkpoint()
        assert checkpoint is not None and checkpoint["done"] is True, f"{context}\n{checkpoint}"
        assert checkpoint["started_at"] == started_at, f"{context}\n{checkpoint}"
        assert datetime.fromisoformat(started_at) < last.started_at
        incremental = records.get_cursor(backfill.store, shop.name, "scan" if shop.webcommander else "orders")
        assert incremental is not None, f"{context}\nno incremental cursor after a completed backfill"
        assert incremental["started_at" if shop.webcommander else "modified"] == started_at, (
            f"{context}\nthe incremental sync must start when the backfill first began: {incremental}"
        )

        served = sum(seen.served for seen in backfill.seen) + final_served
        listed = len(shop.listing)
        print(f"  {served} orders served over {len(kills) + 1} runs ({listed} listed)")
        extra = shop.verification(start) + len(kills) * (shop.page_size if shop.webcommander else 0)
        assert served <= listed + len(kills) * _waste_limit(shop) + extra, (
            f"{context}\n{served} orders served"
        )
        # Resuming saves the work done (the pass that proves a resumed scan aside).
        assert served - shop.verification(start) < len(kills) * listed / 2, (
            f"{context}\n{served} orders served over all runs"
        )

        assert_mirror_matches_shop(backfill)
        assert not backfill.survivors, (
            f"{context}\n{len(backfill.survivors)} of {len(kills)} SIGKILLed backfills left "
            f"{sum(backfill.survivors)} processes running (mapping workers, resource tracker)"
        )
        print(f"  {time.monotonic() - began:.1f}s, {len(kills)} kills")
    finally:
        backfill.close()


def test_webcommander_backfill_killed_at_random_points_resumes_to_an_exact_mirror(
    webcommander: Shop, tmp_path: Path
) -> None:
    kill_and_resume(webcommander, tmp_path)


def test_woocommerce_backfill_killed_at_random_points_resumes_to_an_exact_mirror(
    woocommerce: Shop, tmp_path: Path
) -> None:
    kill_and_resume(woocommerce, tmp_path)
