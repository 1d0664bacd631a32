"""The bronze rows a silver build must (re)process: its change set since a bronze version.

bronze/events is append-only (ingestion and quarantine replay only add files), so the rows added
after version ``v`` are the rows of the files that the commits ``v+1 … now`` added and that are
still in the current snapshot. Those add actions are read from the Delta log's commit files
(``_delta_log/<version>.json``, the open Delta protocol), one small file per new commit; only the
new data files are opened. Files a later commit rewrote (OPTIMIZE) are covered because the
rewritten file is itself an add of that range. If a commit file was already cleaned up (log
retention), every file counts as new — slower, still correct.

Change Data Feed would give the same rows, but bronze is not created with
``delta.enableChangeDataFeed`` and changing bronze's table properties is not the silver layer's
call; for an append-only table the add actions *are* the change feed.

Reprocessing rows silver already holds is harmless (the build is a function of the rows, not of
how often it saw them), so the change set may safely be a superset.

A long backfill (weeks of hours ingested before silver runs, or a first build) is processed in
steps of at most ``GROWTHLAKE_SILVER_STEP_ROWS`` rows (:func:`change_steps`): consecutive bronze
versions, in commit order, exactly as the hourly job would have processed them. Each row is read
in the step of the commit that added its current file, so every row is processed once and the
memory of a build is bounded by the step, not by the backlog.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import unquote

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
from deltalake import DeltaTable

from lake import delta_io
from lake.landing import parse_partition_key
from lake.ledger import read_ledger
from lake.paths import LakePaths
from lake.schemas import BRONZE_EVENTS
from lake.settings import current as current_settings

__all__ = ["BronzeChanges", "bronze_changes", "change_steps", "STEP_ROWS"]

STEP_ROWS = 1_000_000
"""Default bound on the bronze rows one step of a silver build processes (``GROWTHLAKE_SILVER_STEP_ROWS``)."""


@dataclass(frozen=True)
class BronzeChanges:
    """Bronze rows to process, and the bronze version they were read at (None: no bronze yet)."""

    rows: pa.Table
    version: int | None
    files_read: int


def _commit_adds(filesystem, since_version: int | None, version: int) -> list[tuple[int, str, int]] | None:
    """``(version, path, rows)`` of every file the commits ``since_version+1 … version`` added
    (all commits from 0 when ``since_version`` is None); None when a commit file is gone."""
    adds: list[tuple[int, str, int]] = []
    for v in range((-1 if since_version is None else since_version) + 1, version + 1):
        try:
            with filesystem.open_input_stream(f"_delta_log/{v:020d}.json") as stream:
                raw = stream.readall()
        except (FileNotFoundError, OSError):
            return None
        for line in raw.splitlines():
            if b'"add"' in line:
                action = json.loads(line)
                if "add" in action:
                    add = action["add"]
                    stats = json.loads(add.get("stats") or "{}")
                    adds.append((v, unquote(add["path"]), int(stats.get("numRecords", 0))))
    return adds


def _added_since(dataset: pads.FileSystemDataset, since_version: int | None, version: int) -> set[str] | None:
    """Paths of the files the commits ``since_version+1 … version`` added (None: a commit file is gone)."""
    adds = _commit_adds(dataset.filesystem, since_version, version)
    return None if adds is None else {path for _, path, _ in adds}


def step_rows() -> int:
    """The bound on rows per step, from ``GROWTHLAKE_SILVER_STEP_ROWS`` (default :data:`STEP_ROWS`)."""
    return current_settings().silver_step_rows


def change_steps(paths: LakePaths, *, since_version: int | None, max_rows: int | None = None) -> list[int | None]:
    """The bronze versions at which a build from ``since_version`` ends its steps, ascending.

    Consecutive commits are grouped while their rows (still live, by the add actions' statistics)
    stay within ``max_rows`` (one commit larger than that is a step of its own). ``[None]`` means
    one step up to the current version: nothing to split, no bronze yet, or a commit file is gone
    (log cleanup), in which case the rows cannot be told apart by commit.
    """
    limit = max_rows or step_rows()  # a bad setting is refused whatever the backlog
    dt = delta_io.open_table(paths.bronze_events)
    if dt is None:
        return [None]
    version = dt.version()
    if since_version is not None and version - since_version <= 1:
        return [None]  # the hourly case: one commit is one step (and listing the table's files costs)
    dataset = dt.to_pyarrow_dataset()
    adds = _commit_adds(dataset.filesystem, since_version, version)
    if adds is None:
        return [None]
    live = {unquote(f.path) for f in dataset.get_fragments()}
    per_version: dict[int, int] = {}
    for v, path, rows in adds:
        if path in live:
            per_version[v] = per_version.get(v, 0) + rows
    ends: list[int] = []
    total = 0
    for v in sorted(per_version):
        if total and total + per_version[v] > limit:
            ends.append(v - 1)
            total = 0
        total += per_version[v]
    if not ends:
        return [None]
    return [*ends, version]


def _landing_rows(paths: LakePaths, dt: DeltaTable, keys: list[str]) -> pa.Table:
    """Bronze rows of the given landing hours (their event dates come from the ledger)."""
    for key in keys:
        parse_partition_key(key)  # validated before it is used in a filter
    ledger = read_ledger(paths, keys)
    days = sorted({d for ds in ledger.column("event_dates").to_pylist() for d in (ds or [])})
    if not days:
        return BRONZE_EVENTS.empty_table()
    ds = dt.to_pyarrow_dataset(partitions=[("event_date", "in", [d.isoformat() for d in days])])
    return ds.to_table(filter=pc.field("_landing_partition").isin(keys)).cast(BRONZE_EVENTS)


def bronze_changes(paths: LakePaths, *, since_version: int | None,
                   landing_partitions: list[str] | None = None, until_version: int | None = None) -> BronzeChanges:
    """Read the bronze rows added after ``since_version`` (all rows if None), plus every row of
    the ``landing_partitions`` hours, from one consistent bronze snapshot.

    Args:
        paths: the lake's locations.
        since_version: a bronze/events version already processed, or None for everything.
        landing_partitions: landing hour keys to reprocess in any case (e.g. a backfill).
        until_version: read only the rows whose current file a commit up to this version added
            (a step of :func:`change_steps`); None: up to the current version.

    Returns:
        The rows (distinct event_ids) and the bronze version they reflect (``until_version`` when given).
    """
    dt = delta_io.open_table(paths.bronze_events)
    if dt is None:
        return BronzeChanges(BRONZE_EVENTS.empty_table(), None, 0)
    version, dataset = dt.version(), dt.to_pyarrow_dataset()  # one snapshot for everything below
    if until_version is not None:
        if not (-1 if since_version is None else since_version) < until_version <= version:
            raise ValueError(f"until_version {until_version} is not a bronze version after {since_version} "
                             f"and at most the current {version}")
        version = until_version
    parts: list[pa.Table] = []
    files = 0
    if since_version is None or since_version < version:
        bounded = since_version is not None or until_version is not None
        added = _added_since(dataset, since_version, version) if bounded else None
        if added is None and until_version is not None:
            raise ValueError(f"bronze/events commit files up to version {until_version} are gone: "
                             "read the change set without until_version")
        fragments = [f for f in dataset.get_fragments() if added is None or unquote(f.path) in added]
        subset = pads.FileSystemDataset(fragments, dataset.schema, dataset.format, dataset.filesystem)
        parts.append(subset.to_table().cast(BRONZE_EVENTS))
        files = len(fragments)
    if landing_partitions:
        parts.append(_landing_rows(paths, dt, list(landing_partitions)))
    rows = pa.concat_tables(parts) if parts else BRONZE_EVENTS.empty_table()
    if len(parts) > 1 and rows.num_rows:  # a landing hour may also hold newly added rows
        frame = pl.from_arrow(rows)
        assert isinstance(frame, pl.DataFrame)
        rows = frame.unique("event_id", keep="first", maintain_order=True).to_arrow().cast(BRONZE_EVENTS)
    return BronzeChanges(rows, version, files)
