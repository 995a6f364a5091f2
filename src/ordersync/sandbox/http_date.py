"""The ``Date`` header from the shop's own clock, as a real shop's web server sends it.

A shop whose clock disagrees with ours stamps ``date_modified`` and ``Date`` from the same clock; the
incremental sync reads ``Date`` to know which stamps are settled. uvicorn's own header would use the
test machine's clock, so the sandbox servers turn it off and this middleware sends the shop's.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from email.utils import format_datetime
from typing import Any


class DateHeader:
    def __init__(self, app: Any, clock: Callable[[], datetime]):
        self.app = app
        self.clock = clock

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_dated(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"date"]
                headers.append((b"date", format_datetime(self.clock(), usegmt=True).encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_dated)
