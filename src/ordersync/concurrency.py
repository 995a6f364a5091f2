"""How many detail requests (refunds, notes) to keep in flight: learned from the shop's answers.

A fixed number is wrong both ways: 8 at 50 ms caps a run at 160 requests a second however idle the
shop is, and the same 8 against a shop with four PHP workers only queues at the shop and draws 429s.
So the limit moves, in the manner of TCP's congestion control and Netflix's concurrency-limits:

- it starts low and doubles each window of answers while latency stays near the best seen (slow
  start), then grows by one a window;
- when answers slow down (the shop queues: the window's median latency above ``tolerance`` times
  the best seen plus ``slack``, which keeps the client's own scheduling noise out of it), it shrinks
  in proportion to the slowdown;
- when a request had to be retried (429, 5xx, timeouts), it halves at once.

A window is as many answers as the limit (at least ``min_window``), so each decision rests on what the
current limit did. The limit never leaves ``[floor, ceiling]``; ``ceiling`` is the shop's
``detail_concurrency``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from statistics import median
from typing import Any

import structlog

log = structlog.get_logger("ordersync.concurrency")


def slot(gate: AdaptiveLimit | asyncio.Semaphore) -> AbstractAsyncContextManager[Any]:
    """A place in ``gate``: an adaptive one learns from the request, a plain semaphore just counts."""
    return gate.slot() if isinstance(gate, AdaptiveLimit) else gate


class AdaptiveLimit:
    """A gate (``async with gate.slot():``) whose width follows the shop's latency and retries."""

    def __init__(
        self,
        ceiling: int,
        *,
        floor: int = 1,
        start: int = 4,
        tolerance: float = 2.0,
        slack: float = 0.010,
        min_window: int = 8,
        retries: Callable[[], int] = lambda: 0,
        clock: Callable[[], float] = time.monotonic,
        name: str = "details",
    ):
        self.floor = max(1, floor)
        self.ceiling = max(self.floor, ceiling)
        self.limit = float(min(max(start, self.floor), self.ceiling))
        self.tolerance = tolerance
        self.slack = slack
        self.min_window = min_window
        self._retries = retries
        self._clock = clock
        self.name = name
        self.in_flight = 0
        self.best: float | None = None
        """The fastest answer seen: the shop's latency with no queue in front of it."""
        self.slow_start = True
        self.peak = self.width
        self.history: list[int] = [self.width]
        """Each width the gate took, in order (runs and benchmarks report it)."""
        self._window: list[float] = []
        self._failures = 0
        self._retries_at = retries()
        self._ready: asyncio.Condition | None = None

    @property
    def width(self) -> int:
        return max(self.floor, int(self.limit))

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one of the gate's places for a request; its time and outcome teach the gate."""
        ready = self._ready = self._ready or asyncio.Condition()
        async with ready:
            await ready.wait_for(lambda: self.in_flight < self.width)
            self.in_flight += 1
        started = self._clock()
        failed = False
        try:
            yield
        except Exception:
            failed = True
            raise
        finally:
            elapsed = self._clock() - started
            async with ready:
                self.in_flight -= 1
                self.observe(elapsed, failed=failed)
                ready.notify(max(0, self.width - self.in_flight))

    def observe(self, seconds: float, *, failed: bool = False) -> None:
        """One answer took ``seconds``; ``failed`` for a request that raised."""
        if failed:
            self._failures += 1
        elif self.best is None or seconds < self.best:
            self.best = seconds
        self._window.append(seconds)
        if len(self._window) >= max(self.min_window, self.width):
            self._decide()

    def _decide(self) -> None:
        retries = self._retries()
        pressed = retries > self._retries_at or self._failures > 0
        self._retries_at, self._failures = retries, 0
        typical = median(self._window)
        self._window.clear()
        before = self.width
        if pressed:
            self.limit = max(self.floor, self.limit / 2)
            self.slow_start = False
        elif self.best is not None and typical > self.tolerance * self.best + self.slack:
            # The shop queues: shrink in proportion to how much slower answers came than the best.
            self.limit = max(self.floor, self.limit * (self.tolerance * self.best + self.slack) / typical)
            self.slow_start = False
        elif self.slow_start:
            self.limit = min(self.ceiling, self.limit * 2)
        else:
            self.limit = min(self.ceiling, self.limit + 1)
        self.peak = max(self.peak, self.width)
        if self.width != before:
            self.history.append(self.width)
            log.debug("concurrency.limit", gate=self.name, limit=self.width, latency_ms=round(typical * 1000))

    def report(self) -> dict[str, Any]:
        """What the gate did, for a run's details."""
        return {
            "ceiling": self.ceiling,
            "peak": self.peak,
            "final": self.width,
            "history": self.history[-20:],
        }
