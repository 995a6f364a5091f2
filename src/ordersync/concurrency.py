"""How many detail requests (refunds, notes) to keep in flight: learned from what the shop delivers.

A fixed number is wrong both ways: 8 at 50 ms caps a run at 160 requests a second however idle the
shop is, and the same 8 against a shop with four PHP workers only queues at the shop and draws 429s.
So the width of the gate moves, judged by the answers a second each width delivered (as TCP BBR
probes for bandwidth), not by latency alone: latency also grows when the client itself is busy (an
embedded sandbox, a mapping worker on the same core), and shrinking then only slows the run.

- It starts at ``start`` and doubles each window while the rate grows by a fifth or more (slow start);
  when a doubling gains less, it goes back to the best width seen.
- Then it probes one wider at a time, keeping the step when the rate improves by a twentieth and
  going back to the best width when it does not: a wider gate that buys no answers only makes a
  longer queue (at the shop, or in a client that is itself the limit). The best rate slowly fades,
  so a shop that speeds up later is probed again.
- When a request had to be retried (429, 5xx, timeouts) or failed, it halves at once. A falling
  rate alone never shrinks the gate: it also falls when the client is busy.

A window is as many answers as the width (at least ``min_window``). Only windows in which the gate
was full count: when the run asked for fewer requests than the gate allows, the rate says nothing
about the width. The width never leaves ``[floor, ceiling]``; ``ceiling`` is the shop's
``detail_concurrency``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import structlog

log = structlog.get_logger("ordersync.concurrency")

_GROWTH = 1.2
"""A doubling in slow start must raise the rate by this factor to be kept."""
_GAIN = 1.05
"""A step of one must raise the rate by this factor to be kept."""
_FADE = 0.97
"""The best rate's share that survives each window without a gain: old bests are probed again."""


def slot(gate: AdaptiveLimit | asyncio.Semaphore) -> AbstractAsyncContextManager[Any]:
    """A place in ``gate``: an adaptive one learns from the request, a plain semaphore just counts."""
    return gate.slot() if isinstance(gate, AdaptiveLimit) else gate


class AdaptiveLimit:
    """A gate (``async with gate.slot():``) whose width follows what the shop delivers."""

    def __init__(
        self,
        ceiling: int,
        *,
        floor: int = 1,
        start: int = 4,
        min_window: int = 8,
        retries: Callable[[], int] = lambda: 0,
        clock: Callable[[], float] = time.monotonic,
        name: str = "details",
    ):
        self.floor = max(1, floor)
        self.ceiling = max(self.floor, ceiling)
        self.width = min(max(start, self.floor), self.ceiling)
        self.min_window = min_window
        self._retries = retries
        self._clock = clock
        self.name = name
        self.in_flight = 0
        self.slow_start = True
        self.best_rate = 0.0
        self.best_width = self.width
        self.peak = self.width
        self.history: list[int] = [self.width]
        """Each width the gate took, in order (runs and benchmarks report it)."""
        self.full = False
        """Whether a request found the gate full during the current window."""
        self._answers = 0
        self._failures = 0
        self._since = clock()
        self._retries_at = retries()
        self._ready: asyncio.Condition | None = None

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one of the gate's places for a request; its outcome teaches the gate."""
        ready = self._ready = self._ready or asyncio.Condition()
        async with ready:
            if self.in_flight >= self.width:
                self.full = True
                await ready.wait_for(lambda: self.in_flight < self.width)
            self.in_flight += 1
        failed = False
        try:
            yield
        except Exception:
            failed = True
            raise
        finally:
            async with ready:
                self.in_flight -= 1
                self.observe(failed=failed)
                ready.notify(max(0, self.width - self.in_flight))

    def observe(self, *, failed: bool = False) -> None:
        """One answer came back (``failed``: the request raised)."""
        self._answers += 1
        self._failures += failed
        if self._answers >= max(self.min_window, self.width):
            self._decide()

    def _decide(self) -> None:
        now = self._clock()
        rate = self._answers / max(now - self._since, 1e-9)
        retries = self._retries()
        pressed = retries > self._retries_at or self._failures > 0
        full = self.full
        self._answers = self._failures = 0
        self._since, self._retries_at, self.full = now, retries, False
        before = self.width
        if pressed:
            self.width = max(self.floor, self.width // 2)
            self.slow_start = False
            self.best_width, self.best_rate = self.width, 0.0
        elif not full:
            pass  # the run asked for fewer requests than the gate allows: nothing learned
        elif self.slow_start:
            if rate >= self.best_rate * _GROWTH:
                self.best_rate, self.best_width = rate, self.width
                self.width = min(self.ceiling, self.width * 2)
            else:
                self.slow_start = False
                self.width = self.best_width
        elif rate >= self.best_rate * _GAIN:
            self.best_rate, self.best_width = rate, self.width
            self.width = min(self.ceiling, self.width + 1)
        elif self.width > self.best_width:
            # The wider gate bought no answers, only a longer queue (at the shop or in this client).
            self.width = self.best_width
        else:
            self.best_rate *= _FADE
        self.peak = max(self.peak, self.width)
        if self.width != before:
            self.history.append(self.width)
            log.debug("concurrency.width", gate=self.name, width=self.width, rate=round(rate, 1))

    def report(self) -> dict[str, Any]:
        """What the gate did, for a run's details."""
        return {
            "ceiling": self.ceiling,
            "peak": self.peak,
            "final": self.width,
            "history": self.history[-20:],
        }
