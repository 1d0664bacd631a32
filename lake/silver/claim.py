"""Who may build silver now, across machines: a claim kept in a Delta table, taken and given back
with conflict-checked commits.

A silver build is several commits to several tables (identity_map, events, sessions, then the
build state) derived from what they held before: two builds interleaving would apply the same
bronze rows twice, or roll back each other's commits as "unfinished". The ``silver`` writer lock
(an ``flock``) keeps the builds of one machine apart; this claim keeps the builds of all machines
apart, through the lake itself.

``silver/_build_claim`` holds one row: who holds the claim and until when (``None``: free). A
build takes it by overwriting that row *from the version it read* — an overwrite removes the file
holding the row, and delta-rs refuses a commit that removes a file another commit removed first,
so of two builds that saw the claim free, one commits and the other gets ``CommitFailedError``,
reads again and waits. The holder renews the claim before each step (the same conditional
overwrite), and gives it back when done. A holder that died leaves a claim that lapses after the
lease (``GROWTHLAKE_LOCK_TIMEOUT``) — at once when it ran on the same machine (its process is
gone); the next build then rolls back whatever the dead one left half-done, as after a crash.

What it does not cover: a holder that stalls for longer than its lease between two renewals
(e.g. a frozen VM) can be overtaken, and its late commits are then rolled back by the next build
(they are not recorded in the build state) — its renewal fails and it stops at its next step.
"""

from __future__ import annotations

import os
import random
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import CommitFailedError

from lake import delta_io
from lake.errors import GrowthlakeError
from lake.paths import LakePaths

__all__ = ["CLAIM_SCHEMA", "SilverClaimLost", "SilverBusy", "silver_claim"]

CLAIM_SCHEMA = pa.schema([
    pa.field("owner", pa.string()),  # host:pid:token of the holder; null when free
    pa.field("until", pa.timestamp("us", tz="UTC")),  # the lease's end; null when free
    pa.field("updated_at", pa.timestamp("us", tz="UTC"), nullable=False),
])


class SilverBusy(GrowthlakeError):
    def __init__(self, owner: str, seconds: float) -> None:
        super().__init__(
            f"could not claim the silver build within {seconds:.0f}s: {owner} holds it (a build on another "
            "machine). Wait for it, or raise GROWTHLAKE_LOCK_TIMEOUT."
        )


class SilverClaimLost(GrowthlakeError):
    def __init__(self, owner: str) -> None:
        super().__init__(
            f"this silver build's claim lapsed and {owner} took it over: this build stops before its next "
            "commit; the other build rolls back what this one left unrecorded. Run the build again."
        )


def _claim_uri(paths: LakePaths) -> str:
    return paths.table("silver", "_build_claim")


def _row(owner: str | None, until: datetime | None) -> pa.Table:
    return pa.Table.from_pylist([{"owner": owner, "until": until, "updated_at": datetime.now(UTC)}],
                                schema=CLAIM_SCHEMA)


def _current(uri: str) -> tuple[DeltaTable, str | None, datetime | None]:
    """The claim table at its latest version (created free if missing) and who holds it until when."""
    dt = delta_io.open_table(uri)
    if dt is None:
        # Two machines may create it at once: each adds a free row, which is harmless (a claim
        # replaces every row it read).
        write_deltalake(uri, _row(None, None), mode="append", storage_options=delta_io.storage_options(uri))
        dt = delta_io.open_table(uri)
        assert dt is not None
    rows = dt.to_pyarrow_table().to_pylist()
    held = [r for r in rows if r["owner"] is not None and r["until"] is not None]
    if not held:
        return dt, None, None
    latest = max(held, key=lambda r: r["until"])
    return dt, latest["owner"], latest["until"]


def _swap(dt: DeltaTable, row: pa.Table) -> bool:
    """Replace the claim row, only if nobody changed it since ``dt``'s version (conflict-checked)."""
    try:
        write_deltalake(dt, row, mode="overwrite")
        return True
    except CommitFailedError:
        return False


def _died_here(holder: str) -> bool:
    """The holder ran on this machine and its process is gone (``kill -9``, OOM): its claim is void
    at once — no need to wait for the lease to lapse after a crash on one machine."""
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


class _Claim:
    def __init__(self, paths: LakePaths, owner: str, lease: timedelta) -> None:
        self.uri, self.owner, self.lease = _claim_uri(paths), owner, lease

    def take(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            dt, holder, until = _current(self.uri)
            now = datetime.now(UTC)
            free = holder is None or until is None or until < now or _died_here(holder)
            if free and _swap(dt, _row(self.owner, now + self.lease)):
                return
            if time.monotonic() > deadline:
                raise SilverBusy(holder or "another build", timeout)
            time.sleep(random.uniform(0.05, 0.25))

    def renew(self) -> None:
        """Extend the lease; raises SilverClaimLost if another build holds the claim now."""
        for _ in range(5):
            dt, holder, _until = _current(self.uri)
            if holder != self.owner:
                raise SilverClaimLost(holder or "nobody")
            if _swap(dt, _row(self.owner, datetime.now(UTC) + self.lease)):
                return
        raise SilverClaimLost("another build")

    def give_back(self) -> None:
        for _ in range(5):
            dt, holder, _until = _current(self.uri)
            if holder != self.owner or _swap(dt, _row(None, None)):
                return


@contextmanager
def silver_claim(paths: LakePaths) -> Iterator[_Claim]:
    """Hold the silver build claim for the block (taken within ``GROWTHLAKE_LOCK_TIMEOUT``; the lease
    is as long). Call ``renew()`` on the yielded claim before each step's commits.

    Raises:
        SilverBusy: a build on another machine held it for longer than the timeout.
    """
    timeout = paths.settings.lock_timeout_s
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    claim = _Claim(paths, owner, timedelta(seconds=timeout))
    claim.take(timeout)
    try:
        yield claim
    finally:
        claim.give_back()
