"""Small asyncio helpers shared by the extractors."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancel requests still in flight when a run stops early, and let them finish cancelling so no
    connection is left half-used and no 'exception never retrieved' warning is printed."""
    pending = list(tasks)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)
