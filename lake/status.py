"""What is in the lake: tables, row counts, last partition, failed gates."""

from __future__ import annotations

import pyarrow.compute as pc

from lake import delta_io
from lake.landing import list_landing_files, list_landing_partitions
from lake.ledger import read_ledger
from lake.paths import LakePaths

__all__ = ["lake_status", "TABLES"]

# table path attribute -> column holding its partition (for "last partition")
TABLES = {
    "bronze/events": ("bronze_events", "event_date"),
    "bronze/quarantine": ("bronze_quarantine", "landing_partition"),
    "bronze/ingestion_ledger": ("ingestion_ledger", "landing_partition"),
}


def lake_status(paths: LakePaths) -> dict:
    """A summary of the lake, cheap enough to run at any time (reads Delta metadata and one column)."""
    tables = []
    for name, (attr, part_col) in TABLES.items():
        uri = getattr(paths, attr)
        dt = delta_io.open_table(uri)
        if dt is None:
            tables.append({"table": name, "rows": 0, "version": "-", "last_partition": None})
            continue
        ds = dt.to_pyarrow_dataset()
        col = ds.to_table(columns=[part_col])[part_col]
        last = pc.max(col).as_py() if len(col) else None
        tables.append({"table": name, "rows": ds.count_rows(), "version": dt.version(),
                       "last_partition": str(last) if last is not None else None})
    ledger = read_ledger(paths)
    failed = ledger.filter(pc.invert(ledger["reconciled"])).select(
        ["landing_partition", "gate_status", "gate_summary"]).sort_by("landing_partition").to_pylist()
    keys = list_landing_partitions(paths)
    return {
        "root": paths.root,
        "landing_hours": len(keys),
        "landing_files": sum(len(list_landing_files(paths, k)) for k in keys),
        "tables": tables,
        "failed": failed,
    }
