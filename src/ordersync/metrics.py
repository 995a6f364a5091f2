"""Prometheus metrics: what this process counts as it runs, and what the state store knows.

Why two sources: requests, retries and run durations happen inside the process and are counted as
they happen (``REQUESTS``, ``RETRIES``, ``RUNS``, ``RUN_SECONDS``); the rest (last success, lag,
orders, quarantine, outbox) is read from the state store at each scrape by ``StateCollector``, so it
is right even for runs another process made and survives a restart. One registry, served by the
daemon's ``/metrics`` (``ops.py``); the metrics and their labels are listed in the README.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import case, func, select

REGISTRY = CollectorRegistry(auto_describe=True)

REQUESTS = Counter(
    "ordersync_requests",
    "HTTP requests to shops, by answer: 2xx, 3xx, 4xx, 5xx, or error (no answer: timeout, refused)",
    ["shop", "status_class"],
    registry=REGISTRY,
)
RETRIES = Counter("ordersync_retries", "HTTP requests retried after a failure", ["shop"], registry=REGISTRY)
RUNS = Counter(
    "ordersync_runs",
    "Runs ended, by kind and outcome (ok, incomplete, failed, abandoned)",
    ["shop", "kind", "status"],
    registry=REGISTRY,
)
RUN_SECONDS = Histogram(
    "ordersync_run_duration_seconds",
    "How long runs took, by kind",
    ["shop", "kind"],
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600),
    registry=REGISTRY,
)


def status_class(status: int | None) -> str:
    return "error" if status is None else f"{status // 100}xx"


class StateCollector(Collector):
    """Gauges and counters read from the state store at each scrape."""

    def __init__(self, settings: Any, store: Any):
        self.settings = settings
        self.store = store

    def collect(self) -> Iterator[Any]:
        from ordersync.state.tables import outbox, runs
        from ordersync.status import collect as shop_statuses

        now = datetime.now(UTC)
        last_ok = GaugeMetricFamily(
            "ordersync_last_success_timestamp_seconds",
            "When the shop's last successful run ended (Unix time)",
            labels=["shop"],
        )
        lag = GaugeMetricFamily(
            "ordersync_lag_seconds", "How far the mirror is behind the shop, in seconds", labels=["shop"]
        )
        quarantined = GaugeMetricFamily(
            "ordersync_quarantined_records", "Records of the shop in quarantine now", labels=["shop"]
        )
        for s in shop_statuses(self.settings, self.store, now=now):
            if s.last_success_at is not None:
                last_ok.add_metric([s.shop], s.last_success_at.timestamp())
            if s.behind_seconds is not None:
                lag.add_metric([s.shop], s.behind_seconds)
            quarantined.add_metric([s.shop], s.quarantined)
        yield from (last_ok, lag, quarantined)

        totals = {
            name: CounterMetricFamily(f"ordersync_orders_{name}", help_, labels=["shop"])
            for name, help_ in (
                ("fetched", "Orders read from the shop by all runs"),
                ("loaded", "Orders written to the mirror (new or changed) by all runs"),
                ("quarantined", "Records quarantined by all runs"),
            )
        }
        incomplete = CounterMetricFamily(
            "ordersync_incomplete_runs", "Runs that could not prove the listing complete", labels=["shop"]
        )
        with self.store.engine.connect() as con:
            rows = con.execute(
                select(
                    runs.c.shop,
                    func.sum(runs.c.fetched),
                    func.sum(runs.c.loaded),
                    func.sum(runs.c.quarantined),
                    func.sum(case((runs.c.status == "incomplete", 1), else_=0)),
                ).group_by(runs.c.shop)
            ).all()
            depth = con.execute(
                select(outbox.c.shop, outbox.c.status, func.count()).group_by(outbox.c.shop, outbox.c.status)
            ).all()
        for shop, fetched, loaded, quarantine, bad in rows:
            totals["fetched"].add_metric([shop], fetched or 0)
            totals["loaded"].add_metric([shop], loaded or 0)
            totals["quarantined"].add_metric([shop], quarantine or 0)
            incomplete.add_metric([shop], bad or 0)
        yield from (*totals.values(), incomplete)

        from ordersync.status import OUTBOX_DEAD, OUTBOX_DONE

        pending = GaugeMetricFamily(
            "ordersync_outbox_depth", "Writes waiting in the outbox, per target shop", labels=["target"]
        )
        dead = GaugeMetricFamily(
            "ordersync_outbox_dead",
            "Dead-lettered writes (no more tries), per target shop",
            labels=["target"],
        )
        outcomes = CounterMetricFamily(
            "ordersync_outbox_operations",
            "Outbox operations by target and outcome (done, dead, superseded, dropped, pending, ...)",
            labels=["target", "outcome"],
        )
        waiting: dict[str, int] = {}
        lost: dict[str, int] = {}
        for shop, status, count in depth:
            outcomes.add_metric([shop, status], count)
            if status in OUTBOX_DEAD:
                lost[shop] = lost.get(shop, 0) + count
            elif status not in OUTBOX_DONE:
                waiting[shop] = waiting.get(shop, 0) + count
        for shop in {s.name for s in self.settings.shops}:
            pending.add_metric([shop], waiting.get(shop, 0))
            dead.add_metric([shop], lost.get(shop, 0))
        yield from (pending, dead, outcomes)
