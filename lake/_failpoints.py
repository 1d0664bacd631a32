"""Named crash points for the kill -9 tests (inactive unless GROWTHLAKE_FAILPOINT names one).

Crash-consistency is a contract here (DESIGN.md: "resuming after a crash mid-write never
duplicates or drops a row"); these let a test kill a real subprocess at the exact moments that
matter — between two commits — rather than hoping a timed kill lands there.
"""

from __future__ import annotations

import os
import signal

from lake.settings import current as current_settings

__all__ = ["failpoint"]


def failpoint(name: str) -> None:
    if current_settings().failpoint == name:
        os.kill(os.getpid(), signal.SIGKILL)
