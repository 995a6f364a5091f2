"""Options shared by the ``ordersync`` commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Config file (default: $ORDERSYNC_CONFIG); without either, the embedded demo (sandbox shops).",
    ),
]
DemoOption = Annotated[
    bool,
    typer.Option("--demo", help="Without a config, write into the embedded demo (sandbox shops) anyway."),
]
