"""Table maintenance on a real lake: compaction changes no row, vacuum frees the superseded files,
and silver neither reprocesses nor rolls back what maintenance committed."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from deltalake import DeltaTable

from lake.erasure.delta_tables import discover_tables
from lake.ingest import ingest_partition
from lake.maintenance import maintain_tables
from lake.silver import build_silver, rebuild_silver, unaudited_tables
from tests.helpers import event, write_batch

HOURS = 12


def _land_day(paths, plan, masker) -> None:
    """12 hours of one day, each ingested and built into silver as the hourly job does; visitors
    sign up in later hours, so silver re-attributes and rewrites files as it goes."""
    for hour in range(HOURS):
        key = f"2026-11-02-{hour:02d}:00"
        lines = [event("page_viewed", {"path": "/"}, ts=f"2026-11-02T{hour:02d}:{m:02d}:00Z",
                       received=f"2026-11-02T{hour:02d}:{m:02d}:30Z", anonymous_id=f"d{hour}-{m % 4}")
                 for m in range(0, 40, 5)]
        if hour:
            lines.append(event("user_signed_up", {"method": "email", "email": "a@b.example"},
                               ts=f"2026-11-02T{hour:02d}:50:00Z", received=f"2026-11-02T{hour:02d}:50:30Z",
                               user_id=f"u{hour}", anonymous_id=f"d{hour - 1}-0"))
        write_batch(paths, key, lines)
        assert ingest_partition(paths, key, plan=plan, masker=masker).published
        build_silver(paths)


def _snapshot(paths) -> dict[str, pl.DataFrame]:
    out = {}
    for name in discover_tables(paths):
        frame = pl.from_arrow(DeltaTable(f"{paths.root}/delta/{name}").to_pyarrow_table())
        out[name] = frame.select(sorted(frame.columns)).sort(pl.all())  # type: ignore[union-attr]
    return out


def _parquet_on_disk(uri: str) -> set[str]:
    return {p.relative_to(uri).as_posix() for p in Path(uri).rglob("*.parquet") if "_delta_log" not in p.parts}


@pytest.fixture
def lake(paths, plan, masker):
    _land_day(paths, plan, masker)
    return paths


def test_compaction_and_vacuum_change_no_row_and_free_the_superseded_files(lake):
    before = _snapshot(lake)
    bronze_files = len(DeltaTable(lake.bronze_events).file_uris())
    assert bronze_files >= HOURS  # one small file per hour in the day's partition
    superseded = len(_parquet_on_disk(lake.silver_events)) - len(DeltaTable(lake.silver_events).file_uris())
    assert superseded > 0, "the day's re-attributions should have left superseded silver files"

    reports = {r.table: r for r in maintain_tables(lake, retention_hours=0)}

    assert _snapshot(lake).keys() == before.keys()
    for name, frame in _snapshot(lake).items():
        if name != "silver/_build_state":  # it records the tables' new versions (below)
            assert frame.equals(before[name]), f"maintenance changed the rows of {name}"
    assert reports["bronze/events"].partitions_compacted == 1
    assert len(DeltaTable(lake.bronze_events).file_uris()) == 2  # the compacted day, and the fence (no row)
    for name in discover_tables(lake):  # nothing on disk but the current version's files
        uri = f"{lake.root}/delta/{name}"
        live = {Path(u).relative_to(uri).as_posix() for u in DeltaTable(uri).file_uris()}
        assert _parquet_on_disk(uri) == live, f"{name}: files left on disk that no version references"
    assert sum(r.files_vacuumed for r in reports.values()) >= superseded

    # Silver recorded maintenance's commits: nothing to roll back, reprocess or re-audit.
    assert unaudited_tables(lake) == []
    again = build_silver(lake)
    assert again.bronze_rows_read == 0 and again.rolled_back == []
    rebuilt = rebuild_silver(lake)
    assert rebuilt.events_written == before["silver/events"].height


def test_vacuum_keeps_what_time_travel_within_the_retention_needs(lake):
    old_version = DeltaTable(lake.bronze_events).version()
    rows = DeltaTable(lake.bronze_events).to_pyarrow_dataset().count_rows()
    reports = {r.table: r for r in maintain_tables(lake, retention_hours=168)}
    assert reports["bronze/events"].partitions_compacted == 1
    assert all(r.files_vacuumed == 0 for r in reports.values()), "files removed just now are within the retention"
    assert DeltaTable(lake.bronze_events, version=old_version).to_pyarrow_dataset().count_rows() == rows


def test_the_nightly_maintenance_job_runs_under_dagster(lake):
    import dagster as dg

    from orchestration.definitions import build_definitions
    from orchestration.resources import LakeResource

    defs = build_definitions(lake=LakeResource(root=lake.root))
    assert defs.resolve_schedule_def("nightly_maintenance").cron_schedule == "0 5 * * *"
    result = defs.resolve_job_def("nightly_maintenance").execute_in_process(instance=dg.DagsterInstance.ephemeral())
    assert result.success
    outputs = [e for e in result.all_node_events if e.event_type_value == "STEP_OUTPUT"]
    figures = outputs[0].event_specific_data.metadata
    assert figures["partitions_compacted"].value >= 1 and figures["files_after"].value < figures["files_before"].value
    assert len(DeltaTable(lake.bronze_events).file_uris()) == 2  # the compacted day, and the fence (no row)


def test_growthlake_maintain_reports_what_it_freed(lake, capsys):
    from orchestration.cli import main as cli

    on_disk = len(_parquet_on_disk(lake.silver_events))
    assert cli(["maintain", "--root", lake.root, "--retention-hours", "0"]) == 0
    out = capsys.readouterr().out
    # 12 hourly files and bronze's fence (a file without a row, lake.delta_io.publish_fenced) -> one file and the fence
    assert "bronze/events: 13 -> 2 files (1 partition(s) compacted)" in out
    live = len(DeltaTable(lake.silver_events).file_uris())
    assert f"silver/events: {live} -> {live} files" in out and f"{on_disk - live} superseded file(s) deleted" in out
    assert len(_parquet_on_disk(lake.silver_events)) == live
