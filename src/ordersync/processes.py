"""Whether a process still exists: a dead run's spool folder is swept, a dead holder's lease taken."""

from __future__ import annotations

import os


def alive(pid: int) -> bool:
    """True unless no process has this pid (one we may not signal still exists)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
