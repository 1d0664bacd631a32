"""Ranged runs (issue 18): a range of landing hours in one Dagster run, one pass per step.

Two days of hours go through the hourly job as one run: every hour keeps its own ledger entry and
its own gate verdicts, a gate that fails holds only the hour whose rows failed it, a rerun commits
nothing, an overlapping range afterwards is exactly once, and a backfill launched through
Dagster's backfill machinery over a partition range is one run.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable

from lake.ingest import ingest_range, partition_key
from lake.ingest.audit import gx_auditor
from lake.ledger import read_ledger, verify_partitions
from orchestration.cli import main as cli
from orchestration.definitions import build_definitions
from orchestration.hours import HOUR_RANGE_TAGS, split_runs
from orchestration.resources import LakeResource
from tests.helpers import event, write_batch

START = datetime(2026, 11, 2, tzinfo=UTC)
BAD = 24  # the hour in the middle of the range whose rows fail the bronze gate
PER_HOUR = 40


def _hour(i: int) -> str:
    return partition_key(START + timedelta(hours=i))


def _land(paths, first: int, count: int, *, bad_rows: int = 0, fixed: bool = False,
          bad: int = BAD) -> dict[str, set[str]]:
    """Hours ``first`` .. ``first + count - 1``: ``PER_HOUR`` events each (first one redelivered in the next
    hour), one contract violation, one unconsented event. Hour ``bad`` also gets ``bad_rows`` events without
    any id — each valid by the contract, the hour not (the bronze gate's identity_key ``mostly``) — or,
    ``fixed``, the same events with their ids. Returns the valid event ids per hour."""
    valid: dict[str, set[str]] = {}
    for i in range(first, first + count):
        key, at = _hour(i), START + timedelta(hours=i, minutes=15)
        ts, received = at.strftime("%Y-%m-%dT%H:%M:%SZ"), (at + timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
        lines = [event(props={"path": f"/h{i}/{n}"}, event_id=f"00000000-0000-4000-8000-{i:04d}{n:08d}", ts=ts,
                       received=received, anonymous_id=f"anon-{i}-{n % 7}") for n in range(PER_HOUR)]
        valid[key] = {e["event_id"] for e in lines}
        if i == bad and bad_rows:
            extra = [event(props={"path": f"/bad/{n}"}, event_id=f"00000000-0000-4000-9000-{n:012d}", ts=ts,
                           received=received, anonymous_id="anon-fixed" if fixed else None) for n in range(bad_rows)]
            lines += extra
            if fixed:
                valid[key] |= {e["event_id"] for e in extra}
        if i > 0:  # a redelivery of the previous hour's first event
            previous = START + timedelta(hours=i - 1, minutes=15)
            lines.append(event(props={"path": f"/h{i - 1}/0"}, event_id=f"00000000-0000-4000-8000-{i - 1:04d}{0:08d}",
                               ts=previous.strftime("%Y-%m-%dT%H:%M:%SZ"),
                               received=received, anonymous_id=f"anon-{i - 1}-0"))
        lines.append(event("button_clicked", {}, ts=ts, received=received))  # unplanned: quarantined
        lines.append(event(ts=ts, received=received, analytics=False))  # no consent: dropped
        write_batch(paths, key, lines)
    return valid


def _run_range(paths, first: int, last: int, instance: dg.DagsterInstance | None = None):
    job = build_definitions(lake=LakeResource(root=paths.root)).resolve_job_def("hourly_ingestion")
    return job.execute_in_process(instance=instance or dg.DagsterInstance.ephemeral(), raise_on_error=False,
                                  tags={HOUR_RANGE_TAGS[0]: _hour(first), HOUR_RANGE_TAGS[1]: _hour(last)})


def _versions(paths) -> dict[str, int | None]:
    tables = {"bronze/events": paths.bronze_events, "bronze/quarantine": paths.bronze_quarantine,
              "bronze/ingestion_ledger": paths.ingestion_ledger, "silver/events": paths.silver_events,
              "silver/identity_map": paths.silver_identity_map, "silver/sessions": paths.silver_sessions}
    return {name: DeltaTable(uri).version() if DeltaTable.is_deltatable(uri) else None
            for name, uri in tables.items()}


def _bronze(paths) -> dict[str, str]:
    table = DeltaTable(paths.bronze_events).to_pyarrow_table(columns=["event_id", "_landing_partition"])
    ids = table["event_id"].to_pylist()
    assert len(ids) == len(set(ids)), "an event is in bronze twice"
    return dict(zip(ids, table["_landing_partition"].to_pylist(), strict=True))


def _asset_is(asset: str):
    import polars as pl

    return pl.col("asset") == asset


def _accounted(row: dict) -> int:
    return (row["bronze_rows"] + row["quarantined"] + row["consent_dropped"] + row["duplicates_dropped"]
            + row["held_for_audit"])


@pytest.mark.slow
@pytest.mark.parametrize("bad_rows", [10, 150], ids=["within-the-range-tolerance", "failing-the-range"])
def test_a_48_hour_range_is_one_run_holds_only_the_bad_hour_and_reruns_commit_nothing(paths, capsys, bad_rows):
    # 10 rows without ids among ~1,900 are within the suite's 1% tolerance over the range, not within the
    # hour's own ~45 rows: the hour must be judged on its own. 150 make the range's validation fail too.
    valid = _land(paths, 0, 48, bad_rows=bad_rows)
    bad = _hour(BAD)
    res = _run_range(paths, 0, 47)

    # One run; the blocking gate of one hour fails it (so nothing downstream ran in it).
    assert not res.success
    evals = res.get_asset_check_evaluations()
    by_check: dict[str, dict[str, bool]] = {}
    for e in evals:
        by_check.setdefault(e.check_name, {})[e.partition] = e.passed
    assert set(by_check["gx_bronze_events"]) == {_hour(i) for i in range(48)}, "a verdict per hour"
    assert [k for k, ok in by_check["gx_bronze_events"].items() if not ok] == [bad]
    assert all(by_check["gx_bronze_quarantine"].values())
    assert all(e.partition for e in evals), "no evaluation without its hour"

    # 47 hours published, one held; one commit per table for the whole range (after the creation of
    # bronze/events and bronze/quarantine — version 0, a fence and no row, lake.delta_io.publish_fenced —
    # and of the ledger, created empty so that racing writers conflict).
    versions = _versions(paths)
    assert (versions["bronze/events"], versions["bronze/quarantine"], versions["bronze/ingestion_ledger"]) == (1, 1, 1)
    bronze = _bronze(paths)
    hour24_first = f"00000000-0000-4000-8000-{BAD:04d}{0:08d}"
    for key, ids in valid.items():
        if key == bad:
            # Held: only its first event is in bronze, from the next hour's redelivery of it — which,
            # the bad hour being held, is the first copy published (as hour by hour).
            assert {i for i in ids if i in bronze} == {hour24_first}
            assert bronze[hour24_first] == _hour(BAD + 1)
        else:
            assert ids <= set(bronze) and {bronze[i] for i in ids} == {key}
    assert not any(i.startswith("00000000-0000-4000-9000-") for i in bronze), "the held rows are not visible"
    held = [p for p in Path(paths.audit_holds).rglob("bronze_events.parquet")]
    assert [p.parents[1].name for p in held] == [bad.replace(":", "")]

    # Every hour has its own ledger row; each reconciles as the ledger defines it for its state.
    ledger = {r["landing_partition"]: r for r in read_ledger(paths).to_pylist()}
    assert sorted(ledger) == [_hour(i) for i in range(48)]
    for key, row in ledger.items():
        assert _accounted(row) == row["lines_landed"], key
        assert row["reconciled"] is (key != bad), key
    # Held: its new rows and its quarantined line — not its first event, which the next hour published.
    assert ledger[bad]["gate_status"] == "failed" and ledger[bad]["held_for_audit"] == PER_HOUR - 1 + bad_rows + 1
    assert ledger[bad]["duplicates_dropped"] == 2
    assert ledger[_hour(BAD + 1)]["duplicates_dropped"] == 0  # its redelivery of the held hour's event is new
    recounted = verify_partitions(paths, sorted(ledger))
    assert [k for k, rec in recounted.items() if not rec.ok] == [bad]
    assert "held by a failed gate" in recounted[bad].detail

    assert cli(["status", "--root", paths.root]) == 1
    assert bad in capsys.readouterr().out  # growthlake status names the held hour

    # A rerun of the range commits nothing new: the bad hour is held again, nothing else changes.
    rerun = _run_range(paths, 0, 47)
    assert not rerun.success
    assert _versions(paths) == versions

    # The source is fixed (the hour redelivered with ids); an overlapping range with a day of new hours
    # after it is exactly once: the fixed hour and the new day publish, the rest is already there.
    valid[bad] = _land(paths, BAD, 1, bad_rows=bad_rows, fixed=True)[bad]
    valid |= _land(paths, 48, 24)
    assert _run_range(paths, BAD, 71).success
    bronze = _bronze(paths)
    assert set(bronze) == set().union(*valid.values())
    assert bronze[hour24_first] == _hour(BAD + 1)  # kept once, where it was first published
    ledger = {r["landing_partition"]: r for r in read_ledger(paths).to_pylist()}
    assert len(ledger) == 72 and all(r["reconciled"] for r in ledger.values())
    assert all(rec.ok for rec in verify_partitions(paths, sorted(ledger)).values())
    silver = DeltaTable(paths.silver_events).to_pyarrow_table(columns=["event_id"])["event_id"]
    assert silver.length() == len(bronze) and pc.count_distinct(silver).as_py() == len(bronze)


def test_a_range_is_one_pass_one_validation_per_suite_one_commit_per_table(paths, plan, masker):
    _land(paths, 0, 12)
    calls: list[str] = []

    def counting(suite, batch, parameters):
        calls.append(suite)
        return gx_auditor(suite, batch, parameters)

    results = ingest_range(paths, [_hour(i) for i in range(12)], plan=plan, masker=masker, auditor=counting)
    assert [r.partition for r in results] == [_hour(i) for i in range(12)]
    assert all(r.published and r.ledger.reconciled and r.hours_in_pass == 12 for r in results)
    assert sorted(calls) == ["bronze_events", "bronze_quarantine"]
    assert {k: v for k, v in _versions(paths).items() if k.startswith("bronze/")} == {  # v0: creation, a fence
        "bronze/events": 1, "bronze/quarantine": 1, "bronze/ingestion_ledger": 1}
    # a redelivery of the previous hour's first event is a duplicate in every hour but the first
    assert [r.ledger.duplicates_dropped for r in results] == [0] + [1] * 11


def test_passes_are_bounded_by_landing_bytes_and_give_the_same_tables(paths, plan, masker, monkeypatch):
    valid = _land(paths, 0, 6)
    keys = [_hour(i) for i in range(6)]
    largest = max(f.stat().st_size for f in Path(paths.landing_events).rglob("*.jsonl"))
    monkeypatch.setenv("GROWTHLAKE_INGEST_STEP_BYTES", str(2 * largest))  # two hours a pass (hours are alike)
    results = ingest_range(paths, keys, plan=plan, masker=masker)
    assert [r.hours_in_pass for r in results] == [2] * 6
    assert DeltaTable(paths.bronze_events).version() == 3  # its creation (a fence), then three passes, a commit each
    assert set(_bronze(paths)) == set().union(*valid.values())
    assert all(r.ledger.reconciled for r in results)
    assert all(rec.ok for rec in verify_partitions(paths, keys).values())


def test_growthlake_run_over_a_range_is_one_dagster_run(paths, monkeypatch, tmp_path, capsys):
    _land(paths, 0, 6)
    home = tmp_path / "dagster_home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    code = cli(["run", "--root", paths.root, "--from", _hour(0), "--to", _hour(5), "--no-warehouse",
                "--no-features", "--no-loops"])
    out = capsys.readouterr().out
    assert code == 0, out
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs()
    assert len(runs) == 1 and runs[0].job_name == "hourly_ingestion"
    assert (runs[0].tags[HOUR_RANGE_TAGS[0]], runs[0].tags[HOUR_RANGE_TAGS[1]]) == (_hour(0), _hour(5))
    lines = [line for line in out.splitlines() if line.startswith("[")]
    assert len(lines) == 6 and all("gates ok" in line for line in lines)  # the per-hour summary is kept
    assert "partitions reconciled          6 / 6" in out
    # The trust records stay per hour: every gate's verdict on every hour, every asset's figures per hour.
    from lake.trust import latest_gate_evaluations, read_asset_runs

    gates = latest_gate_evaluations(paths)
    assert gates.height == 10 * 6 and set(gates["partition"].to_list()) == {_hour(i) for i in range(6)}
    assert gates["passed"].all()
    runs = read_asset_runs(paths).filter(_asset_is("bronze/events"))
    ledger = {r["landing_partition"]: r["bronze_rows"] for r in read_ledger(paths).to_pylist()}
    assert {r["partition"]: r["rows"] for r in runs.iter_rows(named=True)} == ledger
    assert all(r["gates_passed"] == 5 for r in runs.iter_rows(named=True))  # the hour's own five bronze gates


def test_growthlake_run_holds_a_bad_hour_and_still_checks_and_builds_the_other_hours(paths, monkeypatch, tmp_path,
                                                                                     capsys):
    import re

    valid = _land(paths, 0, 6, bad_rows=150, bad=3)
    home = tmp_path / "dagster_home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    code = cli(["run", "--root", paths.root, "--from", _hour(0), "--to", _hour(5), "--no-warehouse",
                "--no-features", "--no-loops"])
    out = capsys.readouterr().out
    assert code == 1, out
    lines = {re.search(r"\d{4}-\d\d-\d\d-\d\d:00", line).group(0): line
             for line in out.splitlines() if line.startswith("[")}
    assert sorted(lines) == [_hour(i) for i in range(6)]
    assert "FAILED: gx_bronze_events" in lines[_hour(3)]
    assert all(lines[_hour(i)].endswith("gates ok") for i in (0, 1, 2, 4, 5)), out
    # The range stopped at the held hour's gate; its other hours were run again, without it: every gate of
    # theirs evaluated, and silver built from everything bronze holds.
    with dg.DagsterInstance.from_config(str(home)) as instance:
        ranges = sorted((r.tags[HOUR_RANGE_TAGS[0]], r.tags[HOUR_RANGE_TAGS[1]]) for r in instance.get_runs())
    assert ranges == [(_hour(0), _hour(2)), (_hour(0), _hour(5)), (_hour(4), _hour(5))]
    bronze = _bronze(paths)
    assert set(bronze) == set().union(*(ids for key, ids in valid.items() if key != _hour(3))) | {
        f"00000000-0000-4000-8000-{3:04d}{0:08d}"}  # the held hour's first event, from the next hour's copy
    silver = DeltaTable(paths.silver_events).to_pyarrow_table(columns=["event_id"])["event_id"].to_pylist()
    assert sorted(silver) == sorted(bronze)


def test_split_runs_cuts_at_gaps_and_at_the_run_size():
    keys = [_hour(i) for i in (0, 1, 2, 5, 6)]
    assert split_runs(keys) == [keys[:3], keys[3:]]
    assert split_runs([_hour(i) for i in range(5)], max_hours=2) == [[_hour(0), _hour(1)], [_hour(2), _hour(3)],
                                                                     [_hour(4)]]


@pytest.mark.slow
def test_a_dagster_backfill_over_a_partition_range_runs_as_one_run(paths):
    # The backfill a person launches from the UI (or `dagster job backfill`): created in the instance and
    # executed by the daemon's backfill iteration, which makes runs as the job's backfill policy says.
    import logging

    from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill
    from dagster._core.storage.dagster_run import RunsFilter
    from dagster._core.test_utils import create_test_daemon_workspace_context, instance_for_test
    from dagster._core.workspace.load_target import ModuleTarget
    from dagster._daemon.backfill import execute_backfill_iteration

    _land(paths, 0, 6)
    keys = [_hour(i) for i in range(6)]
    overrides = {  # launch each run at once, in this process
        "run_launcher": {"module": "dagster._core.launcher.sync_in_memory_run_launcher",
                         "class": "SyncInMemoryRunLauncher"},
        "run_coordinator": {"module": "dagster._core.run_coordinator", "class": "DefaultRunCoordinator"}}
    repo = str(Path(__file__).resolve().parents[2])
    with instance_for_test(overrides=overrides) as instance:
        target = ModuleTarget(module_name="orchestration.definitions", attribute="defs", working_directory=repo,
                              location_name="growthlake")
        with create_test_daemon_workspace_context(target, instance) as workspace:
            location = workspace.create_request_context().get_code_location("growthlake")
            repository = next(iter(location.get_repositories().values()))
            partition_set = next(p for p in repository.get_partition_sets() if p.job_name == "hourly_ingestion")
            instance.add_backfill(PartitionBackfill(
                backfill_id="hours", partition_set_origin=partition_set.get_remote_origin(),
                status=BulkActionStatus.REQUESTED, partition_names=keys, from_failure=False, reexecution_steps=None,
                tags={}, backfill_timestamp=time.time()))
            for _ in range(5):
                list(execute_backfill_iteration(workspace, logging.getLogger("backfill")))
                if instance.get_backfill("hours").status != BulkActionStatus.REQUESTED:
                    break
        runs = instance.get_runs(RunsFilter(tags={"dagster/backfill": "hours"}))
        assert len(runs) == 1, [r.tags for r in runs]
        run = runs[0]
        assert run.status == dg.DagsterRunStatus.SUCCESS
        assert (run.tags[HOUR_RANGE_TAGS[0]], run.tags[HOUR_RANGE_TAGS[1]]) == (keys[0], keys[-1])
        evaluations = [r.dagster_event.asset_check_evaluation_data
                       for r in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)]
        assert sorted(e.partition for e in evaluations if e.check_name == "ledger_reconciles") == keys
        records = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(dg.AssetKey(["bronze", "ingestion_ledger"]), "ledger_reconciles"), limit=20)
        assert sorted((r.partition, r.status.value) for r in records) == [(k, "SUCCEEDED") for k in keys]
    ledger = read_ledger(paths).to_pylist()
    assert sorted(r["landing_partition"] for r in ledger) == keys and all(r["reconciled"] for r in ledger)


def test_a_held_hour_makes_only_its_day_untrusted_features_and_loops_run_for_the_other_day(paths, monkeypatch,
                                                                                        tmp_path, capsys):
    """Issue 19 (point 4): one hour failing a gate no longer stops features and loops for the whole range."""
    _land(paths, 0, 48, bad_rows=150, bad=30)  # two whole days; the bad hour is on the second
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    code = cli(["run", "--root", paths.root, "--from", _hour(0), "--to", _hour(47), "--no-warehouse"])
    out = capsys.readouterr().out
    assert code == 1, out  # a gate failed: still reported
    first, second = START.date(), (START + timedelta(days=1)).date()
    assert f"features and loops skip {second}: untrusted while {_hour(30)} failed a gate" in out
    feature_days = [line.split()[1] for line in out.splitlines() if line.startswith("features 20")]
    loop_days = [line.split()[1] for line in out.splitlines() if line.startswith("loops 20")]
    assert feature_days == loop_days == [str(first)], out
