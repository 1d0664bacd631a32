"""The landing zone: hourly folders of JSONL batches, as collectors deliver them."""

from __future__ import annotations

import re
from collections.abc import Generator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pyarrow.fs as pafs

from lake.errors import LandingPartitionError
from lake.paths import LakePaths

__all__ = [
    "LandingFile",
    "partition_key",
    "partition_folder",
    "parse_partition_key",
    "list_landing_files",
    "list_landing_partitions",
    "landing_fs",
    "iter_lines",
    "iter_line_batches",
    "hour_keys",
]

_KEY = re.compile(r"^(\d{4}-\d{2}-\d{2})-(\d{2}):00$")
_FOLDER = re.compile(r"date=(\d{4}-\d{2}-\d{2})/hour=(\d{2})$")
# JSON lines, plain or gzipped. Besides growthlake's own `.jsonl[.gz]`, the names the Segment S3
# (`<ts>.<id>.gz`) and RudderStack object-storage (`<ts>.<id>.json.gz`) destinations give their dumps.
_SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".json.gz", ".gz")


@dataclass(frozen=True)
class LandingFile:
    path: str  # filesystem path as pyarrow.fs sees it
    relative: str  # below the landing root, e.g. date=2026-11-02/hour=05/batch-1.jsonl
    size: int
    modified: datetime | None = None  # last modification (UTC), when the filesystem tells it


def partition_key(hour: datetime) -> str:
    """The hourly partition key (Dagster's format) of a UTC hour: ``2026-11-02-05:00``."""
    return hour.astimezone(UTC).strftime("%Y-%m-%d-%H:00")


def parse_partition_key(key: str) -> datetime:
    """``2026-11-02-05:00`` -> aware UTC datetime; anything else is a clear error."""
    m = _KEY.match(key)
    if not m:
        raise LandingPartitionError(key, "an hourly key like 2026-11-02-05:00 (UTC)")
    try:
        return datetime.fromisoformat(f"{m.group(1)}T{m.group(2)}:00:00+00:00")
    except ValueError:
        raise LandingPartitionError(key, "a real calendar date and an hour 00-23") from None


def partition_folder(key: str) -> str:
    """``2026-11-02-05:00`` -> ``date=2026-11-02/hour=05``."""
    hour = parse_partition_key(key)
    return f"date={hour:%Y-%m-%d}/hour={hour:%H}"


def hour_keys(start: datetime, end: datetime) -> list[str]:
    """Every hourly key from ``start`` up to, not including, ``end``."""
    start = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    keys = []
    while start < end:
        keys.append(partition_key(start))
        start += timedelta(hours=1)
    return keys


def landing_fs(paths: LakePaths) -> tuple[pafs.FileSystem, str]:
    """The filesystem of the landing zone (local, or the object store's from its URI and ``AWS_*``)
    and the landing folder's path in it; :attr:`LandingFile.path` is a path in that filesystem."""
    return _fs(paths)


def _fs(paths: LakePaths) -> tuple[pafs.FileSystem, str]:
    if paths.is_local:
        return pafs.LocalFileSystem(), paths.landing_events
    fs, base = pafs.FileSystem.from_uri(paths.landing_events)
    return fs, base


def list_landing_files(paths: LakePaths, key: str) -> list[LandingFile]:
    """Complete batch files of one landing hour, sorted by name (hidden/partial names skipped)."""
    fs, base = _fs(paths)
    folder = partition_folder(key)
    sel = pafs.FileSelector(f"{base}/{folder}", allow_not_found=True)
    out = []
    for info in fs.get_file_info(sel):
        name = info.base_name
        if info.type != pafs.FileType.File or name.startswith((".", "_")) or not name.endswith(_SUFFIXES):
            continue
        mtime = info.mtime
        modified = (mtime if mtime.tzinfo else mtime.replace(tzinfo=UTC)) if mtime is not None else None
        out.append(LandingFile(info.path, f"{folder}/{name}", info.size or 0, modified))
    return sorted(out, key=lambda f: f.relative)


def list_landing_partitions(paths: LakePaths) -> list[str]:
    """Every hourly key that has a folder in the landing zone, oldest first."""
    fs, base = _fs(paths)
    keys = []
    for info in fs.get_file_info(pafs.FileSelector(base, allow_not_found=True, recursive=False)):
        if info.type != pafs.FileType.Directory or not info.base_name.startswith("date="):
            continue
        for sub in fs.get_file_info(pafs.FileSelector(info.path, allow_not_found=True)):
            m = _FOLDER.search(sub.path)
            if sub.type == pafs.FileType.Directory and m:
                keys.append(f"{m.group(1)}-{m.group(2)}:00")
    return sorted(keys)


def iter_lines(paths: LakePaths, file: LandingFile, *, chunk_size: int = 1 << 22,
               max_line_bytes: int | None = None) -> Generator[tuple[int, bytes], None, None]:
    """Yield ``(line_number, raw_line)`` (1-based, newline stripped), streaming in chunks.

    With ``max_line_bytes``, a longer line is yielded cut to its first ``max_line_bytes + 1``
    bytes — its length still tells that it is too long, and memory stays bounded however long the
    line is. A line that spans chunks is joined once (linear in its length).
    """
    for first, lines in iter_line_batches(paths, file, chunk_size=chunk_size, max_line_bytes=max_line_bytes):
        for offset, raw in enumerate(lines):
            yield first + offset, raw


def iter_line_batches(paths: LakePaths, file: LandingFile, *, chunk_size: int = 1 << 22,
                      max_line_bytes: int | None = None) -> Generator[tuple[int, list[bytes]], None, None]:
    """The lines of :func:`iter_lines`, a chunk at a time: ``(number of the first line, lines)``.

    The same lines with the same numbers (1-based, newline stripped, a longer line cut to its first
    ``max_line_bytes + 1`` bytes), split by ``bytes.split`` instead of one ``yield`` per line.
    """
    fs, _ = _fs(paths)
    compression = "gzip" if file.path.endswith(".gz") else None
    keep = None if max_line_bytes is None else max_line_bytes + 1
    with fs.open_input_stream(file.path, compression=compression) as stream:
        number = 0
        pending: list[bytes] = []  # the pieces of a line that started in an earlier chunk
        pending_len = 0
        while True:
            chunk = stream.read(chunk_size)
            if not chunk:
                break
            lines = chunk.split(b"\n")
            if len(lines) == 1:  # no newline: the current line goes on
                if keep is None or pending_len < keep:
                    pending.append(chunk)
                pending_len += len(chunk)
                continue
            if pending:
                pending.append(lines[0])
                lines[0] = b"".join(pending)
            tail = lines.pop()
            if keep is not None and max(map(len, lines)) > keep:
                lines = [raw if len(raw) <= keep else raw[:keep] for raw in lines]
            yield number + 1, lines
            number += len(lines)
            pending, pending_len = [tail], len(tail)
        tail = b"".join(pending)
        if tail:
            yield number + 1, [tail if keep is None or len(tail) <= keep else tail[:keep]]


def check_landing_hour(paths: LakePaths, key: str, files: list[LandingFile] | None = None,
                       *, probe_bytes: int = 1 << 16) -> tuple[bool, str, dict[str, int]]:
    """Can ingestion read landing hour ``key``? Every file is opened and its first ``probe_bytes`` read
    (decompressed, for ``.gz``). Returns ``(passed, description, figures)``. A failing hour is not
    ingested until it passes (its files stay where they are: nothing is lost)."""
    import zlib

    files = list_landing_files(paths, key) if files is None else files
    unreadable: list[str] = []
    for file in files:
        try:
            for _first, _lines in iter_line_batches(paths, file, chunk_size=probe_bytes):
                break
        except (OSError, EOFError, ValueError, zlib.error) as exc:
            unreadable.append(f"{file.relative} ({type(exc).__name__}: {str(exc)[:80]})")
    figures = {"files": len(files), "bytes": sum(f.size for f in files), "unreadable": len(unreadable)}
    if unreadable:
        return False, (f"{len(unreadable)} of {len(files)} file(s) cannot be read: {'; '.join(unreadable[:3])} — "
                       "replace or remove them; the hour is ingested once every file reads"), figures
    return True, f"{len(files)} file(s), {figures['bytes']:,} bytes, all readable", figures
