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

__all__ = ["BronzeChanges", "bronze_changes"]


@dataclass(frozen=True)
class BronzeChanges:
    """Bronze rows to process, and the bronze version they were read at (None: no bronze yet)."""

    rows: pa.Table
    version: int | None
    files_read: int


def _added_since(dataset: pads.FileSystemDataset, since_version: int, version: int) -> set[str] | None:
    """Paths of the files the commits ``since_version+1 … version`` added (None: a commit file is gone)."""
    added: set[str] = set()
    for v in range(since_version + 1, version + 1):
        try:
            with dataset.filesystem.open_input_stream(f"_delta_log/{v:020d}.json") as stream:
                raw = stream.readall()
        except (FileNotFoundError, OSError):
            return None
        for line in raw.splitlines():
            if b'"add"' in line:
                action = json.loads(line)
                if "add" in action:
                    added.add(unquote(action["add"]["path"]))
    return added


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
                   landing_partitions: list[str] | None = None) -> BronzeChanges:
    """Read the bronze rows added after ``since_version`` (all rows if None), plus every row of
    the ``landing_partitions`` hours, from one consistent bronze snapshot.

    Args:
        paths: the lake's locations.
        since_version: a bronze/events version already processed, or None for everything.
        landing_partitions: landing hour keys to reprocess in any case (e.g. a backfill).

    Returns:
        The rows (distinct event_ids) and the bronze version of the snapshot.
    """
    dt = delta_io.open_table(paths.bronze_events)
    if dt is None:
        return BronzeChanges(BRONZE_EVENTS.empty_table(), None, 0)
    version, dataset = dt.version(), dt.to_pyarrow_dataset()  # one snapshot for everything below
    parts: list[pa.Table] = []
    files = 0
    if since_version is None or since_version < version:
        added = None if since_version is None else _added_since(dataset, since_version, version)
        fragments = [f for f in dataset.get_fragments() if added is None or unquote(f.path) in added]
        subset = pads.FileSystemDataset(fragments, dataset.schema, dataset.format, dataset.filesystem)
        parts.append(subset.to_table().cast(BRONZE_EVENTS))
        files = len(fragments)
    if landing_partitions:
        parts.append(_landing_rows(paths, dt, list(landing_partitions)))
    rows = pa.concat_tables(parts) if parts else BRONZE_EVENTS.empty_table()
    if len(parts) > 1 and rows.num_rows:  # a landing hour may also hold newly added rows
        rows = pl.from_arrow(rows).unique("event_id", keep="first", maintain_order=True).to_arrow().cast(BRONZE_EVENTS)
    return BronzeChanges(rows, version, files)
