"""Writer locks: serialize the read-classify-commit cycle of the tables a step writes.

delta-rs makes each commit atomic, but deduplication reads the table, decides, then appends:
two writers doing that at once could both append the same event. A lock held across the cycle
makes it exactly-once. The lock is an ``flock`` on a file in :attr:`LakePaths.locks`
(``$ROOT/_locks``, ``$GROWTHLAKE_LOCAL_DIR/_locks`` for an object-store root, or
``$GROWTHLAKE_LOCK_DIR``), released by the kernel if the process dies, so a ``kill -9`` never
leaves a stale lock.

**Object-store roots** (``s3://…``). The lock folder is local, so the lock serializes the writers
of *one machine* — every Dagster step, Celery worker and CLI process there — and nothing across
machines. What holds across machines:

* every commit is atomic and never lost: delta-rs commits version N+1 with a conditional put
  (create-if-absent), so of two writers racing for a version one wins and the other re-reads
  the log and retries (or fails), never overwriting it;
* commits that *read* what they change — MERGE (``delta_io.insert_missing``: the message outbox,
  keyed inserts), ``replace_where``, overwrites of a partition — are conflict-checked by delta-rs:
  a concurrent commit that added files to the partitions they read makes them fail with
  ``CommitFailedError`` instead of committing a decision taken on stale data;
* *blind appends* are not: two appends never conflict (nor do two creations of a table with rows:
  delta-rs commits the losing one as an append). So bronze ingestion does not blind-append: its
  commits are fenced (``lake.delta_io.publish_fenced``: each removes and replaces a row-less fence
  file, so a commit decided on a version another writer has since committed after fails, and the
  pass is classified again), and a silver build first takes the silver build claim, a
  conditional overwrite in the lake (``lake.silver.claim``). The lock stays as an optimisation:
  the writers of one machine wait for each other instead of redoing their work. DEPLOY.md says
  what is guaranteed and how it was tested.
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
    """Hold the writer lock ``name`` for the duration of the block.

    Raises:
        LockTimeout: another process held it for longer than ``timeout`` (default
            ``$GROWTHLAKE_LOCK_TIMEOUT``, 600 s).
        ConfigError: the root is an object store and neither ``GROWTHLAKE_LOCAL_DIR`` nor
            ``GROWTHLAKE_LOCK_DIR`` says where the lock files live.
    """
    timeout = timeout if timeout is not None else paths.settings.lock_timeout_s
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
