"""Durable landing writes: a batch file is complete and on disk before anyone may see it.

Each commit writes one file per landing hour into a spool folder outside ``landing/events`` (so the
landing listing never sees a partial file), ``fsync``s it, renames it into
``landing/events/date=YYYY-MM-DD/hour=HH/`` (atomic: same filesystem) and ``fsync``s the folder, so
the rename survives a power cut. Only then are the requests it holds acknowledged. A temp file left
by a crash was never renamed, hence never acknowledged: :meth:`LandingWriter.recover` deletes it
(the SDKs retry what was not acknowledged).
"""

from __future__ import annotations

import fcntl
import os
import secrets
import shutil
from datetime import UTC, datetime
from pathlib import Path

from lake.durable import fsync_dir
from lake.errors import ConfigError
from lake.landing import partition_folder
from lake.paths import LakePaths

__all__ = ["LandingWriter"]


class LandingWriter:
    """Writes batch files into the landing zone of a local storage root, durably.

    One writer per process; several collector processes may share a root (each has its own spool
    folder, held by a lock while the process lives).
    """

    def __init__(self, paths: LakePaths) -> None:
        if not paths.is_local:
            raise ConfigError("GROWTHLAKE_ROOT", f"is an object store ({paths.root}); the collector lands files on a "
                              "local disk (it needs fsync and an atomic rename)",
                              "Run it with a local root and sync the landing folder to the object store.")
        self.events = Path(paths.landing_events)
        self.spool_root = Path(paths.root) / "landing" / "_collector"
        self._name = f"{os.getpid()}-{secrets.token_hex(4)}"
        self.spool = self.spool_root / self._name
        self._seq = 0
        self._lock_fd: int | None = None

    def open(self) -> int:
        """Create this process's spool (and hold its lock); delete stale spools. Returns files removed."""
        self.spool.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.spool_root / f"{self._name}.lock", os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return self.recover()

    def close(self) -> None:
        if self._lock_fd is not None:
            shutil.rmtree(self.spool, ignore_errors=True)
            (self.spool_root / f"{self._name}.lock").unlink(missing_ok=True)
            os.close(self._lock_fd)
            self._lock_fd = None

    def recover(self) -> int:
        """Delete the spools of collector processes that died (their lock is free): never acknowledged."""
        removed = 0
        for lock in self.spool_root.glob("*.lock"):
            name = lock.name[:-5]
            if name == self._name:
                continue
            try:
                fd = os.open(lock, os.O_RDWR)
            except FileNotFoundError:
                continue  # another collector cleaned it up meanwhile
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a live collector
                spool = self.spool_root / name
                removed += sum(1 for p in spool.iterdir()) if spool.is_dir() else 0
                shutil.rmtree(spool, ignore_errors=True)
                lock.unlink(missing_ok=True)
            finally:
                os.close(fd)
        return removed

    def _folder(self, key: str) -> Path:
        folder = self.events / partition_folder(key)
        if not folder.is_dir():
            missing = [p for p in (folder, *folder.parents) if not p.exists()]
            folder.mkdir(parents=True, exist_ok=True)
            for created in missing:  # each new folder's entry must be durable in its parent
                fsync_dir(created.parent)
        return folder

    def write(self, hours: dict[str, list[bytes]]) -> list[str]:
        """Land ``{hour key: lines}`` — one file per hour — durably. Returns the landed paths."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        landed = []
        for key, lines in hours.items():
            self._seq += 1
            name = f"collector-{stamp}-{self._name}-{self._seq:06d}.jsonl"
            tmp = self.spool / name
            with open(tmp, "wb") as sink:
                sink.writelines(lines)
                sink.flush()
                os.fsync(sink.fileno())
            folder = self._folder(key)
            os.replace(tmp, folder / name)
            fsync_dir(folder)
            landed.append(str(folder / name))
        return landed
