"""The adaptive gate for detail requests: grows while the shop keeps up, yields when it does not."""

from __future__ import annotations

import asyncio
import contextlib

from ordersync.concurrency import AdaptiveLimit


def _feed(gate: AdaptiveLimit, latency: float, answers: int) -> None:
    for _ in range(answers):
        gate.observe(latency)


def test_it_grows_to_the_ceiling_while_latency_holds() -> None:
    gate = AdaptiveLimit(32, start=4)
    _feed(gate, 0.050, 400)
    assert gate.width == 32 and gate.history[:4] == [4, 8, 16, 32]


def test_it_halves_when_requests_were_retried() -> None:
    retries = [0]
    gate = AdaptiveLimit(32, start=16, retries=lambda: retries[0])
    _feed(gate, 0.050, 16)
    assert gate.width == 32
    retries[0] = 3  # a 429 or a 503 was retried during the next window
    _feed(gate, 0.050, 32)
    assert gate.width == 16 and not gate.slow_start
    _feed(gate, 0.050, 16)
    assert gate.width == 17  # then grows by one a window, not by doubling


def test_a_failed_request_counts_as_pressure() -> None:
    gate = AdaptiveLimit(16, start=8)
    for _ in range(7):
        gate.observe(0.05)
    gate.observe(0.05, failed=True)
    assert gate.width == 4


def test_it_shrinks_in_proportion_when_the_shop_queues() -> None:
    """A shop with four workers at 50 ms: at 16 in flight each answer waits four turns (200 ms)."""
    gate = AdaptiveLimit(32, start=16)
    _feed(gate, 0.050, 16)  # the best latency: 50 ms, no queue
    assert gate.width == 32
    _feed(gate, 0.400, 32)  # 32 in flight against 4 workers: eight turns
    assert gate.width == int(32 * (2 * 0.050 + 0.010) / 0.400)  # 8
    assert gate.width >= gate.floor


def test_client_noise_of_a_few_milliseconds_is_not_taken_for_a_queue() -> None:
    gate = AdaptiveLimit(32, start=4)
    _feed(gate, 0.001, 8)
    _feed(gate, 0.006, 200)  # the client's own event loop adds a few ms
    assert gate.width == 32


def test_never_more_in_flight_than_the_width() -> None:
    async def run() -> tuple[int, AdaptiveLimit]:
        gate = AdaptiveLimit(6, start=2, min_window=4)
        busiest = 0

        async def request() -> None:
            nonlocal busiest
            async with gate.slot():
                busiest = max(busiest, gate.in_flight)
                assert gate.in_flight <= gate.width
                await asyncio.sleep(0.001)

        await asyncio.gather(*(request() for _ in range(200)))
        return busiest, gate

    busiest, gate = asyncio.run(run())
    assert gate.in_flight == 0 and busiest == gate.peak == 6


def test_a_request_that_raises_frees_its_place() -> None:
    async def run() -> AdaptiveLimit:
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

    gate = asyncio.run(run())
    assert gate.in_flight == 0
