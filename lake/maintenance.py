"""Table maintenance: compact the small files hourly appends leave, vacuum the superseded ones.

Every hourly run appends a small file per touched partition, and every rewrite (silver's
re-attributions and session partitions, features, erasure, the trust tables) leaves the files it
replaced on disk: Delta only *marks* them removed, so time travel keeps working. Nothing deletes
them but ``VACUUM``, and nothing merges the small files but ``OPTIMIZE``. Left alone, a lake that
runs hourly slows down (thousands of files per table to list and open) and grows without bound
(a 10M-event backfill built silver hour by hour left 33 GB of superseded files).

:func:`maintain_tables` does both, per table:

* **compact** — in each partition holding at least ``min_files`` files smaller than the target
  size, merge them (``optimize.compact``; a commit that changes no row, marked ``dataChange:
  false``). Partitions that are already compact are left alone, so the feature store's per-day
  fingerprints of untouched days do not change. silver/events compacts itself, in its own layout.
* **vacuum** — delete the files removed more than ``retention_hours`` ago (default 168 h, Delta's
  own default; ``GROWTHLAKE_VACUUM_RETENTION_HOURS``). Time travel and ``RESTORE`` to versions
  younger than that keep working.

It runs under every writer lock (in the erasure's order, so no deadlock), and keeps silver's
build state truthful: the compaction commits are recorded as the silver tables' new versions (they
are not a foreign write), and bronze's compaction as consumed when silver had consumed everything
before it (it adds no row).
"""

from __future__ import annotations

import os
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import pyarrow as pa
from deltalake import DeltaTable

from lake import delta_io
from lake.erasure.core import ERASURE_LOCKS
from lake.erasure.delta_tables import discover_tables
from lake.locks import table_lock
from lake.paths import LakePaths
from lake.settings import current as current_settings
from lake.silver.state import read_state, record_own_commits, recorded_versions, silver_table_uris, table_versions
from lake.silver.tables import FILE_BYTES as SILVER_FILE_BYTES
from lake.silver.tables import Tables, commit_properties

__all__ = ["TableMaintenance", "maintain_tables", "retention_hours_from_env", "TARGET_FILE_BYTES"]

TARGET_FILE_BYTES = 64 << 20
"""Files smaller than this count as small; compaction writes files up to this size. The silver
tables use their own, smaller target (``lake.silver.tables.FILE_BYTES``: re-attribution rewrites
the files holding a device's events, so their files stay small)."""

_MIN_FILES = 8
# Tables that compact themselves, in their own layout (silver/events keeps anonymous events in files
# of their own: a plain bin-packing compaction would mix them again). Vacuumed, never compacted here.
_SELF_COMPACTED = frozenset({"silver/events"})


@dataclass
class TableMaintenance:
    """What maintenance did to one table."""

    table: str
    files_before: int = 0
    files_after: int = 0
    partitions_compacted: int = 0
    files_vacuumed: int = 0
    bytes_vacuumed: int = 0

    def summary(self) -> str:
        return (f"{self.table}: {self.files_before} -> {self.files_after} files "
                f"({self.partitions_compacted} partition(s) compacted), {self.files_vacuumed} superseded file(s) "
                f"deleted ({self.bytes_vacuumed / 2**20:.1f} MB)")


def retention_hours_from_env() -> int:
    """``GROWTHLAKE_VACUUM_RETENTION_HOURS`` (default 168); ConfigError when it is malformed."""
    return current_settings().vacuum_retention_hours


def _small_file_partitions(dt: DeltaTable, *, target: int, min_files: int) -> list[list[tuple[str, str, str]]]:
    """Partition filters of the partitions holding at least ``min_files`` files under ``target`` bytes."""
    actions = pa.table(dt.get_add_actions(flatten=True))
    part_cols = list(dt.metadata().partition_columns)
    sizes = actions.column("size_bytes").to_pylist()
    values = [actions.column(f"partition.{c}").to_pylist() for c in part_cols]
    small: dict[tuple, int] = {}
    for i, size in enumerate(sizes):
        if size < target:
            key = tuple(v[i] for v in values)
            small[key] = small.get(key, 0) + 1
    out = []
    for key, count in sorted(small.items(), key=lambda kv: tuple(str(v) for v in kv[0])):
        if count >= min_files:
            if any(v is None for v in key):
                continue  # a null partition value cannot be named in a partition filter
            out.append([(c, "=", v.isoformat() if hasattr(v, "isoformat") else str(v))
                        for c, v in zip(part_cols, key, strict=True)])
    return out


def _compact(uri: str, report: TableMaintenance, *, target: int, min_files: int) -> None:
    dt = delta_io.open_table(uri)
    if dt is None:
        return
    for filters in _small_file_partitions(dt, target=target, min_files=min_files):
        dt.optimize.compact(partition_filters=filters or None, target_size=target,
                            commit_properties=commit_properties("maintenance_compact"))
        report.partitions_compacted += 1


def _vacuum(uri: str, report: TableMaintenance, *, retention_hours: int) -> None:
    dt = delta_io.open_table(uri)
    if dt is None:
        return
    # full: also files no commit ever referenced (a writer killed before its commit) — safe while
    # every writer lock is held; only files older than the retention are touched either way.
    kwargs: dict[str, Any] = {"retention_hours": retention_hours, "enforce_retention_duration": False, "full": True}
    doomed = dt.vacuum(dry_run=True, **kwargs)
    report.bytes_vacuumed = _sizes(uri, doomed)
    report.files_vacuumed = len(dt.vacuum(dry_run=False, commit_properties=commit_properties("maintenance_vacuum"),
                                          **kwargs))


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _sizes(uri: str, relative: list[str]) -> int:
    """Total bytes of a table's files (paths relative to ``uri``, a folder or an object-store URI)."""
    if "://" not in uri:
        return sum(_size(os.path.join(uri, p)) for p in relative)
    if not relative:
        return 0
    import pyarrow.fs as pafs

    fs, base = pafs.FileSystem.from_uri(uri)
    infos = fs.get_file_info([f"{base}/{unquote(p)}" for p in relative])  # one listing per file, in a batch
    return sum(i.size or 0 for i in infos if i.type == pafs.FileType.File)


def maintain_tables(paths: LakePaths, *, compact: bool = True, vacuum: bool = True,
                    retention_hours: int | None = None, target_bytes: int = TARGET_FILE_BYTES,
                    min_files: int = _MIN_FILES) -> list[TableMaintenance]:
    """Compact and vacuum every Delta table of the lake (see the module docstring).

    Args:
        paths: the lake's locations (local roots; an object store's lifecycle rules or its own
            maintenance apply there).
        compact: merge small files in partitions holding at least ``min_files`` of them.
        vacuum: delete files superseded more than ``retention_hours`` ago.
        retention_hours: default ``GROWTHLAKE_VACUUM_RETENTION_HOURS`` or 168.

    Returns:
        One report per table, in table order.

    Raises:
        LockTimeout: a writer held one of the locks for too long.
    """
    hours = retention_hours_from_env() if retention_hours is None else retention_hours
    if hours < 0:
        raise ValueError(f"retention_hours must be >= 0, got {hours}")
    with ExitStack() as locks:
        for name in ERASURE_LOCKS:
            locks.enter_context(table_lock(paths, name))
        state = read_state(paths)
        silver_uris = set(silver_table_uris(paths))
        silver_clean = state is not None and table_versions(paths, Tables()) == recorded_versions(state)
        bronze_before = delta_io.version(paths.bronze_events)
        reports = {name: TableMaintenance(table=name) for name in discover_tables(paths)}
        for name, report in reports.items():
            uri = f"{paths.root}/delta/{name}"
            report.files_before = _live_files(uri)
            # A silver table a crashed build left unrecorded is rolled back by the next build: leave it as it is.
            if compact and name not in _SELF_COMPACTED and (uri not in silver_uris or silver_clean):
                target = SILVER_FILE_BYTES if name.startswith("silver/") else target_bytes
                _compact(uri, report, target=target, min_files=min_files)
        state_uri = paths.silver_build_state
        for name, report in reports.items():  # after the compactions, so their superseded files go too
            uri = f"{paths.root}/delta/{name}"
            if vacuum and uri != state_uri:
                _vacuum(uri, report, retention_hours=hours)
        # Compaction and vacuum commit to the silver tables and bronze: not a foreign write.
        if state is not None and silver_clean:
            record_own_commits(paths, state, bronze_before=bronze_before)
        for name, report in reports.items():
            uri = f"{paths.root}/delta/{name}"
            if vacuum and uri == state_uri:
                _vacuum(uri, report, retention_hours=hours)
            report.files_after = _live_files(uri)
    return list(reports.values())


def _live_files(uri: str) -> int:
    dt = delta_io.open_table(uri)
    return 0 if dt is None else len(dt.file_uris())
