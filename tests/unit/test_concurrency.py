"""The adaptive gate for detail requests: as wide as the shop delivers, narrower when it pushes back.

Shops are modelled by the answers a second they deliver at each width, on a virtual clock: a shop
far away (latency-bound: more in flight, more answers), a shop with four PHP workers (nothing gained
past four), and a client that is itself the limit (no width helps).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from ordersync.concurrency import AdaptiveLimit


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def run(gate: AdaptiveLimit, clock: Clock, rate_at: Callable[[int], float], answers: int) -> list[int]:
    """Feed ``answers`` answers, the gate full throughout, at the rate the shop gives its width."""
    widths = []
    for _ in range(answers):
        clock.now += 1 / rate_at(gate.width)
        gate.full = True
        gate.observe()
        widths.append(gate.width)
    return widths


def far_away(width: int) -> float:
    return width / 0.050  # 50 ms each, answered in parallel


def four_workers(width: int) -> float:
    return min(width, 4) / 0.050


def busy_client(width: int) -> float:
    return 300.0  # the client's CPU caps it, whatever the width


def test_a_distant_shop_gets_the_whole_ceiling() -> None:
    clock = Clock()
    gate = AdaptiveLimit(32, start=4, clock=clock)
    run(gate, clock, far_away, 2_000)
    assert gate.width == 32 and gate.history[:4] == [4, 8, 16, 32]


def test_a_shop_with_four_workers_is_not_queued_at() -> None:
    clock = Clock()
    gate = AdaptiveLimit(32, start=2, clock=clock)
    widths = run(gate, clock, four_workers, 5_000)
    assert gate.peak == 8  # slow start tried 8, gained nothing over 4, went back
    assert set(widths[-2_000:]) <= {4, 5}  # then probes one more now and then, and steps back


def test_a_busy_client_does_not_collapse_the_gate() -> None:
    """The failure of a latency rule: latency grows with the client's own load, and the gate shrank to
    one request at a time (a 2,000-order demo took 95 s instead of 14)."""
    clock = Clock()
    gate = AdaptiveLimit(32, start=4, clock=clock)
    widths = run(gate, clock, busy_client, 5_000)
    assert min(widths) >= 4 and set(widths[-1_000:]) <= {4, 5}


def test_it_halves_when_requests_were_retried() -> None:
    clock, retries = Clock(), [0]
    gate = AdaptiveLimit(32, start=16, clock=clock, retries=lambda: retries[0])
    run(gate, clock, far_away, 16)
    assert gate.width == 32
    retries[0] = 3  # a 429 or a 503 was retried during the next window
    run(gate, clock, far_away, 32)
    assert gate.width == 16 and not gate.slow_start
    run(gate, clock, far_away, 16)
    assert gate.width == 17  # then grows by one a window, not by doubling


def test_a_failed_request_counts_as_pressure() -> None:
    clock = Clock()
    gate = AdaptiveLimit(16, start=8, clock=clock)
    run(gate, clock, far_away, 7)
    gate.full = True
    gate.observe(failed=True)
    assert gate.width == 4


def test_a_gate_never_full_learns_nothing() -> None:
    clock = Clock()
    gate = AdaptiveLimit(32, start=4, clock=clock)
    for _ in range(500):
        clock.now += 0.01
        gate.observe()  # the run asked for fewer requests than the gate allows
    assert gate.width == 4 and gate.history == [4]


def test_never_more_in_flight_than_the_width() -> None:
    async def requests() -> tuple[int, AdaptiveLimit]:
        gate = AdaptiveLimit(6, start=2, min_window=4)
        busiest = 0

        async def request() -> None:
            nonlocal busiest
            async with gate.slot():
                busiest = max(busiest, gate.in_flight)
                assert gate.in_flight <= gate.width
                await asyncio.sleep(0.002)

        await asyncio.gather(*(request() for _ in range(300)))
        return busiest, gate

    busiest, gate = asyncio.run(requests())
    assert gate.in_flight == 0 and busiest == gate.peak and gate.peak > 2


def test_a_request_that_raises_frees_its_place() -> None:
    async def requests() -> AdaptiveLimit:
        gate = AdaptiveLimit(2, start=2)

        async def failing() -> None:
            async with gate.slot():
                raise RuntimeError("shop said no")

        for _ in range(5):
            with contextlib.suppress(RuntimeError):
                await failing()
        async with gate.slot():
            pass
        return gate

    assert asyncio.run(requests()).in_flight == 0
