"""A set of order ids that costs bits, not objects, for the ids shops actually use.

Why: a run remembers every id it saw (to spot repeats, to prove a listing complete, to tell new
orders from rewritten ones). As ``str`` objects in a Python set that is about 90 bytes an order, and
a 300,000-order backfill kept three such sets. Both platforms number orders with small integers, so
an id written canonically (ASCII digits, no leading zero) below ``BITMAP_LIMIT`` is one bit in a
bytearray; any other id (text, ``"007"``, a huge number) goes to an ordinary set beside it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, MutableSet

BITMAP_LIMIT = 1 << 26
"""Ids from here up go to the plain set: the bitmap never grows past 8 MiB."""


def _number(value: str) -> int:
    """The id as a bitmap position, or -1 when it is not a canonical small decimal."""
    if value.isascii() and value.isdigit() and (value[0] != "0" or len(value) == 1) and len(value) < 9:
        number = int(value)
        if number < BITMAP_LIMIT:
            return number
    return -1


class IdSet(MutableSet[str]):
    __slots__ = ("_bits", "_count", "_other")

    def __init__(self, ids: Iterable[str] = ()) -> None:
        self._bits = bytearray()
        self._count = 0
        self._other: set[str] = set()
        for value in ids:
            self.add(value)

    def __contains__(self, value: object) -> bool:
        if not isinstance(value, str):
            return False
        number = _number(value)
        if number < 0:
            return value in self._other
        byte = number >> 3
        return byte < len(self._bits) and bool(self._bits[byte] & (1 << (number & 7)))

    def add(self, value: str) -> None:
        number = _number(value)
        if number < 0:
            self._other.add(value)
            return
        byte = number >> 3
        bits = self._bits
        if byte >= len(bits):
            bits.extend(bytes(max(byte + 1 - len(bits), len(bits))))  # doubling: amortised growth
        mask = 1 << (number & 7)
        if not bits[byte] & mask:
            bits[byte] |= mask
            self._count += 1

    def update(self, values: Iterable[str]) -> None:
        for value in values:
            self.add(value)

    def discard(self, value: str) -> None:
        number = _number(value)
        if number < 0:
            self._other.discard(value)
            return
        byte = number >> 3
        mask = 1 << (number & 7)
        if byte < len(self._bits) and self._bits[byte] & mask:
            self._bits[byte] &= ~mask & 0xFF
            self._count -= 1

    def __len__(self) -> int:
        return self._count + len(self._other)

    def __iter__(self) -> Iterator[str]:
        for byte, value in enumerate(self._bits):
            if value:
                base = byte << 3
                for bit in range(8):
                    if value & (1 << bit):
                        yield str(base + bit)
        yield from self._other

    def __repr__(self) -> str:
        return f"IdSet({len(self)} ids)"

    @classmethod
    def _from_iterable(cls, it: Iterable[str]) -> IdSet:
        return cls(it)
