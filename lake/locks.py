"""Writer locks: serialize the read-classify-commit cycle of the tables a step writes.

delta-rs makes each commit atomic, but deduplication reads the table, decides, then appends:
two writers doing that at once could both append the same event. A lock held across the cycle
makes it exactly-once. Locally an ``flock`` (released by the kernel if the process dies, so a
``kill -9`` never leaves a stale lock).
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lake.errors import GrowthlakeError
from lake.paths import LakePaths

__all__ = ["table_lock", "LockTimeout"]


class LockTimeout(GrowthlakeError):
    def __init__(self, name: str, seconds: float) -> None:
        super().__init__(
            f"could not take the writer lock {name!r} within {seconds:.0f}s: another ingestion is "
            "writing the same tables. Wait for it, or raise GROWTHLAKE_LOCK_TIMEOUT."
        )


@contextmanager
def table_lock(paths: LakePaths, name: str, *, timeout: float | None = None) -> Iterator[None]:
    """Hold the writer lock ``name`` for the duration of the block."""
    if not paths.is_local:
        # Object stores: delta-rs commits with conditional puts; callers there must use
        # merge-based commits, which conflict-check on their own (see DEPLOY notes).
        yield
        return
    timeout = timeout if timeout is not None else float(os.environ.get("GROWTHLAKE_LOCK_TIMEOUT", "600"))
    Path(paths.locks).mkdir(parents=True, exist_ok=True)
    fd = os.open(f"{paths.locks}/{name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LockTimeout(name, timeout) from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # closing releases the flock
