"""What is in the lake, layer by layer: tables, row counts, last partition, the warehouse marts,
recent alerts and every failed gate (``growthlake status``; the feature views and loops are added by
``growth_loops.status``)."""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

import pyarrow.compute as pc

from lake import delta_io
from lake.landing import list_landing_files, list_landing_partitions
from lake.ledger import read_ledger
from lake.paths import LakePaths

__all__ = ["ALERT_WINDOW", "TABLES", "lake_status"]

# layer/table -> (path attribute of LakePaths, column holding its partition, for "last partition")
TABLES = {
    "bronze/events": ("bronze_events", "event_date"),
    "bronze/quarantine": ("bronze_quarantine", "landing_partition"),
    "bronze/ingestion_ledger": ("ingestion_ledger", "landing_partition"),
    "silver/events": ("silver_events", "event_date"),
    "silver/identity_map": ("silver_identity_map", None),
    "silver/sessions": ("silver_sessions", "session_date"),
}
ALERT_WINDOW = dt.timedelta(hours=24)  # alerts newer than this are listed


def lake_status(paths: LakePaths, *, now: dt.datetime | None = None) -> dict[str, Any]:
    """A summary of the lake, cheap enough to run at any time (Delta metadata, one column per table).

    Returns:
        ``root``, ``landing_hours``, ``landing_files``; ``tables`` (bronze and silver: rows, version,
        last partition); ``warehouse`` (path, built_at, and rows per mart, or None before the first
        build); ``alerts`` (raised in the last :data:`ALERT_WINDOW`, newest first, with their ``state``:
        open, acked or resolved), ``alerts_total`` and ``alerts_open`` (not resolved, of any age);
        ``failed`` (landing hours that do not reconcile or whose bronze gate held them) and
        ``failed_gates`` (every gate whose latest evaluation failed).
    """
    now = now or dt.datetime.now(dt.UTC)
    keys = list_landing_partitions(paths)
    ledger = read_ledger(paths)
    failed = ledger.filter(pc.invert(ledger["reconciled"])).select(
        ["landing_partition", "gate_status", "gate_summary"]).sort_by("landing_partition").to_pylist()
    alerts, total, open_ = _alerts(paths, now)
    return {
        "root": paths.root,
        "landing_hours": len(keys),
        "landing_files": sum(len(list_landing_files(paths, k)) for k in keys),
        "tables": [_table(paths, name, attr, col) for name, (attr, col) in TABLES.items()],
        "warehouse": _warehouse(paths),
        "alerts": alerts,
        "alerts_total": total,
        "alerts_open": open_,
        "failed": failed,
        "failed_gates": _failed_gates(paths),
    }


def _table(paths: LakePaths, name: str, attr: str, part_col: str | None) -> dict[str, Any]:
    dt_ = delta_io.open_table(getattr(paths, attr))
    if dt_ is None:
        return {"table": name, "rows": 0, "version": "-", "last_partition": None}
    ds = dt_.to_pyarrow_dataset()
    last = None
    if part_col is not None:
        col = ds.to_table(columns=[part_col])[part_col]
        last = pc.max(col).as_py() if len(col) else None
    return {"table": name, "rows": ds.count_rows(), "version": dt_.version(),
            "last_partition": str(last) if last is not None else None}


def _warehouse(paths: LakePaths) -> dict[str, Any] | None:
    """The marts of the analyst warehouse: rows per table and when the file was swapped in."""
    path = paths.warehouse
    if not os.path.exists(path):
        return None
    import duckdb

    built_at = dt.datetime.fromtimestamp(os.path.getmtime(path), dt.UTC)
    con = duckdb.connect(path, read_only=True)
    try:
        names = [r[0] for r in con.execute(
            "select table_name from information_schema.tables where table_schema = 'marts' order by 1").fetchall()]
        marts = {}
        for name in names:
            row = con.execute(f'select count(*) from marts."{name}"').fetchone()  # names come from the catalog
            marts[name] = int(row[0]) if row else 0
    finally:
        con.close()
    return {"path": path, "built_at": built_at, "marts": marts}


def _alerts(paths: LakePaths, now: dt.datetime) -> tuple[list[dict[str, Any]], int, int]:
    from lake.alerts import read_alerts

    frame = read_alerts(paths)
    recent = frame.filter(frame["raised_at"] >= now - ALERT_WINDOW).sort("raised_at", descending=True)
    open_ = frame.filter(frame["state"] != "resolved").height
    return recent.select("raised_at", "kind", "subject", "severity", "detail", "state").to_dicts(), frame.height, open_


def _failed_gates(paths: LakePaths) -> list[dict[str, Any]]:
    from lake.trust import latest_gate_evaluations

    latest = latest_gate_evaluations(paths)
    if latest.is_empty():
        return []
    failed = latest.filter(~latest["passed"]).sort("evaluated_at", descending=True)
    return failed.select("asset", "partition", "gate", "severity", "description", "evaluated_at").to_dicts()
