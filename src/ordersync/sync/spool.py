"""Pages to the mapping workers and their tables back to the writer through shared memory, not pickles.

The main process leaves each page's bytes in a file of the run's spool folder (``/dev/shm`` where it
exists, so the file is memory, never disk) for the worker that maps it, and the worker writes the
page's tables as Arrow IPC streams, one after another, into one file of the same folder; only names
and offsets travel through the pool's pipe. The main process maps the file and reads the tables in
place, without copying or unpickling a byte, and unlinks it at once: the mapping keeps the memory
until the batch that holds the tables is written and dropped. A run removes its folder when it ends,
and folders left by a killed run are removed by the next one.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from ordersync.processes import alive

QUARANTINE = "_quarantine"
"""The name the quarantine table travels under beside the mirror tables."""

_PREFIX = "ordersync-spool-"
_counter = itertools.count()


@dataclass(frozen=True)
class Spooled:
    """A page's tables waiting in a spool file: (table, offset, length) of each IPC stream."""

    path: str
    parts: tuple[tuple[str, int, int], ...]

    def open(self) -> dict[str, pa.Table]:
        source = pa.memory_map(self.path)
        try:
            data = source.read_buffer()
        finally:
            # The file goes now; the mapping (held by the tables' buffers) keeps its memory for them.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        return {
            name: pa.ipc.open_stream(data.slice(offset, length)).read_all()
            for name, offset, length in self.parts
        }


def put(folder: str, data: bytes) -> str:
    """Leave ``data`` (a page's bytes) for a worker: one write into memory instead of a pickle sent
    through the pool's pipe in 64 KB pieces."""
    path = os.path.join(folder, f"{os.getpid()}-{next(_counter)}.body")
    with open(path, "wb") as sink:
        sink.write(data)
    return path


def take(path: str) -> bytes:
    """What :func:`put` left (in the worker), removed once read."""
    with open(path, "rb") as source:
        data = source.read()
    os.unlink(path)
    return data


def write(folder: str, tables: dict[str, pa.Table]) -> Spooled:
    """Write ``tables`` into a new file of ``folder`` (in the worker)."""
    path = os.path.join(folder, f"{os.getpid()}-{next(_counter)}.arrows")
    parts: list[tuple[str, int, int]] = []
    with pa.OSFile(path, "wb") as sink:
        for name, table in tables.items():
            start = sink.tell()
            with pa.ipc.new_stream(sink, table.schema) as stream:
                stream.write_table(table)
            parts.append((name, start, sink.tell() - start))
    return Spooled(path, tuple(parts))


def _base() -> Path:
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        return shm
    return Path(tempfile.gettempdir())


def _sweep(base: Path) -> None:
    """Remove the spool folders of runs that died (named by their process id)."""
    for folder in base.glob(f"{_PREFIX}*"):
        pid = folder.name.removeprefix(_PREFIX).split("-", 1)[0]
        if pid.isdigit() and not alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def spool_folder() -> Iterator[str]:
    """A run's spool folder, removed with whatever is left in it when the run ends."""
    base = _base()
    _sweep(base)
    folder = tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-", dir=base)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
