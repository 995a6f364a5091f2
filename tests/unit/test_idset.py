"""IdSet behaves as a set of strings for every id a shop could send, canonical or not."""

from __future__ import annotations

import random

from ordersync.idset import BITMAP_LIMIT, IdSet

ODD = [
    "0",
    "00",
    "007",
    "-1",
    "1.0",
    "12a",
    "",
    " 5",
    "١٢",
    "²",
    str(BITMAP_LIMIT),
    str(BITMAP_LIMIT - 1),
    "9" * 30,
]


def test_it_answers_as_a_set_of_strings_does() -> None:
    rng = random.Random(5)
    plain: set[str] = set()
    compact = IdSet()
    for _ in range(20_000):
        value = rng.choice([str(rng.randrange(50_000)), rng.choice(ODD), f"wc-{rng.randrange(100)}"])
        action = rng.random()
        if action < 0.7:
            plain.add(value)
            compact.add(value)
        elif action < 0.8:
            plain.discard(value)
            compact.discard(value)
        assert (value in compact) == (value in plain), value
        assert len(compact) == len(plain)
    assert set(compact) == plain
    assert sorted(compact) == sorted(plain)
    for other in ODD:
        assert (other in compact) == (other in plain), other
    assert 12 not in compact  # type: ignore[operator]  # only text is an id


def test_set_operations_give_what_sets_give() -> None:
    a, b = {"1", "2", "007", "x"}, {"2", "3", "x", "8"}
    assert set(IdSet(a) | IdSet(b)) == a | b
    assert set(IdSet(a) & b) == a & b
    assert set(b & IdSet(a)) == a & b
    assert set(IdSet(a) - IdSet(b)) == a - b
    assert IdSet(a) == IdSet(a)


def test_a_run_of_small_ids_costs_bits_not_objects() -> None:
    ids = IdSet(str(i) for i in range(1, 300_001))
    assert len(ids) == 300_000
    assert len(ids._bits) <= 2 * 300_001 // 8 + 1  # doubling growth: at most twice the ids' span
    assert not ids._other
