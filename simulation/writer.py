"""Landing writer: stream lines into ``date=…/hour=…`` folders of their received_at, atomically.

Lines are buffered per hour and appended to hidden ``.<batch>.jsonl.partial`` files whenever
the buffer passes a byte budget, so memory stays bounded and at most one file is open at a time.
``close()`` renames every partial to its final name with ``os.replace`` (ingestion ignores names
starting with ``.`` or ``_``, so it never sees a half-written batch). An hour holds one file per
``max_lines_per_file`` lines.
"""

from __future__ import annotations

import os
from pathlib import Path

from .formats import MS_HOUR, hour_folder

__all__ = ["LandingWriter"]


class _Hour:
    """Buffered bytes of one hour folder: the open batch, and batches filled since the last flush."""

    __slots__ = ("buf", "batch", "count", "full")

    def __init__(self) -> None:
        self.buf = bytearray()  # not a list of lines: orjson's bytes objects over-allocate ~4 KiB each
        self.batch = 0
        self.count = 0  # lines in the current batch, flushed or not
        self.full: list[tuple[int, bytearray]] = []


class LandingWriter:
    """Append-only, deterministic: the same ``add`` calls produce byte-identical files."""

    def __init__(self, landing_dir: Path, *, batch_name: str, max_lines_per_file: int,
                 max_buffered_bytes: int) -> None:
        self.landing_dir = landing_dir
        self.batch_name = batch_name
        self.max_lines = max_lines_per_file
        self.max_bytes = max_buffered_bytes
        self._hours: dict[int, _Hour] = {}
        self._buffered = 0
        self._files: list[tuple[Path, Path]] = []  # (partial, final), in creation order
        self._created: set[tuple[int, int]] = set()
        self.lines_by_hour: dict[int, int] = {}
        self.faults_by_hour: dict[int, dict[str, int]] = {}

    @property
    def files_written(self) -> int:
        return len(self._files)

    def add(self, received_ms: int, line: bytes, kind: str | None) -> None:
        """Queue one line (no trailing newline) for the hour folder of ``received_ms``."""
        hour = received_ms // MS_HOUR
        h = self._hours.get(hour)
        if h is None:
            h = self._hours[hour] = _Hour()
            self.lines_by_hour[hour] = 0
        if h.count == self.max_lines:
            h.full.append((h.batch, h.buf))
            h.buf, h.batch, h.count = bytearray(), h.batch + 1, 0
        h.buf += line
        h.buf += b"\n"
        h.count += 1
        self.lines_by_hour[hour] += 1
        if kind is not None:
            counts = self.faults_by_hour.setdefault(hour, {})
            counts[kind] = counts.get(kind, 0) + 1
        self._buffered += len(line) + 1
        if self._buffered > self.max_bytes:
            self.flush()

    def flush(self) -> None:
        """Append every buffered line to its hour's partial batch file(s)."""
        for hour in sorted(self._hours):
            h = self._hours[hour]
            for batch, buf in (*h.full, (h.batch, h.buf)):
                if not buf:
                    continue
                key = (hour, batch)
                create = key not in self._created
                with open(self._partial(hour, batch, create=create), "wb" if create else "ab") as fh:
                    fh.write(buf)
                self._created.add(key)
            h.full, h.buf = [], bytearray()
        self._buffered = 0

    def close(self) -> None:
        """Flush, then publish every batch under its final name."""
        self.flush()
        for partial, final in self._files:
            os.replace(partial, final)

    def abort(self) -> None:
        """Remove the partial files of a failed run (published files are left alone)."""
        for partial, _ in self._files:
            partial.unlink(missing_ok=True)

    def _partial(self, hour: int, batch: int, *, create: bool) -> Path:
        folder = self.landing_dir.joinpath(*hour_folder(hour))
        name = f"{self.batch_name}-{batch:04d}.jsonl"
        partial = folder / f".{name}.partial"
        if create:
            folder.mkdir(parents=True, exist_ok=True)
            self._files.append((partial, folder / name))
        return partial
