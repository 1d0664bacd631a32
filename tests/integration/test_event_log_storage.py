"""growthlake's dagster.yaml (orchestration/event_log.py): the pooled SQLite event log records what
Dagster's records, in the same files, and a running run's logs still stream."""

from __future__ import annotations

import shutil
import threading
import time
import uuid

import dagster as dg

from lake.settings import Settings
from orchestration.event_log import PooledSqliteEventLogStorage, ensure_instance_config
from orchestration.hours import HourCheck, check_events
from orchestration.runner import dagster_instance

hours = dg.HourlyPartitionsDefinition(start_date="2026-06-01-00:00")


@dg.asset(partitions_def=hours, check_specs=[dg.AssetCheckSpec("positive", asset="counted", blocking=True,
                                                                  partitions_def=hours)])
def counted(context):
    """As the hourly assets do (orchestration.hours): per-hour metadata and one check verdict per hour."""
    for key in context.partition_keys:
        context.add_asset_metadata({"rows": len(key)}, partition_key=key)
    yield dg.MaterializeResult(metadata={"hours": len(context.partition_keys)})
    yield from check_events(context, [HourCheck(dg.AssetKey("counted"), "positive", key, True)
                                      for key in context.partition_keys])


@dg.asset(partitions_def=hours, deps=[counted])
def downstream() -> None:
    return None


def _materialize_range(instance, first: str, last: str) -> dg.ExecuteInProcessResult:
    job = dg.Definitions(assets=[counted, downstream]).resolve_implicit_global_asset_job_def()
    return job.execute_in_process(instance=instance, tags={"dagster/asset_partition_range_start": first,
                                                           "dagster/asset_partition_range_end": last})


def test_cli_instance_records_a_ranged_run_that_dagsters_default_storage_reads_back(tmp_path):
    home = tmp_path / "dagster_home"
    instance = dagster_instance(Settings(root=str(tmp_path / "lake"), dagster_home=str(home)))
    assert isinstance(instance.event_log_storage, PooledSqliteEventLogStorage)
    assert "PooledSqliteEventLogStorage" in (home / "dagster.yaml").read_text()
    assert not instance.telemetry_enabled  # offline: no usage statistics, no welcome banner in CLI output

    result = _materialize_range(instance, "2026-06-01-00:00", "2026-06-01-05:00")
    assert result.success
    six = [f"2026-06-01-{h:02d}:00" for h in range(6)]

    def recorded(inst) -> tuple[set[str], set[str], int]:
        mats = inst.fetch_materializations(dg.AssetKey("counted"), limit=100).records
        checks = inst.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(dg.AssetKey("counted"), "positive"), limit=100)
        return ({r.partition_key for r in mats if r.partition_key},
                {c.partition for c in checks if c.status.value == "SUCCEEDED"},
                len(inst.all_logs(result.run_id)))

    parts, checked, n_logs = recorded(instance)
    assert parts == set(six) and checked == set(six)
    assert instance.get_latest_materialization_event(dg.AssetKey("downstream")) is not None
    instance.dispose()

    # The same files, opened with Dagster's own storage (growthlake's dagster.yaml removed): the same history.
    plain_home = tmp_path / "plain_home"
    shutil.copytree(home, plain_home)
    (plain_home / "dagster.yaml").write_text("")
    plain = dg.DagsterInstance.from_config(str(plain_home))
    assert type(plain.event_log_storage).__name__ == "SqliteEventLogStorage"
    assert recorded(plain) == (set(six), set(six), n_logs)
    assert plain.get_run_by_id(result.run_id) is not None

    # ... and written by Dagster's storage, read by growthlake's.
    assert _materialize_range(plain, "2026-06-01-06:00", "2026-06-01-07:00").success
    plain.dispose()
    ensure_instance_config(plain_home)  # "" is not growthlake's: left alone
    assert (plain_home / "dagster.yaml").read_text() == ""
    shutil.copy(home / "dagster.yaml", plain_home / "dagster.yaml")  # as when a DAGSTER_HOME is copied
    ensure_instance_config(plain_home)  # ... growthlake's file for the old folder is rewritten for this one
    assert str(home) not in (plain_home / "dagster.yaml").read_text()
    pooled_again = dg.DagsterInstance.from_config(str(plain_home))
    assert isinstance(pooled_again.event_log_storage, PooledSqliteEventLogStorage)
    mats = pooled_again.fetch_materializations(dg.AssetKey("counted"), limit=100).records
    assert {r.partition_key for r in mats} == {f"2026-06-01-{h:02d}:00" for h in range(8)}
    pooled_again.dispose()


def test_an_existing_dagster_yaml_is_left_alone(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    own = "# the team's PostgreSQL instance\ntelemetry:\n  enabled: false\n"
    (home / "dagster.yaml").write_text(own)
    ensure_instance_config(home)
    assert (home / "dagster.yaml").read_text() == own
    instance = dagster_instance(Settings(root=str(tmp_path / "lake"), dagster_home=str(home)))
    assert not isinstance(instance.event_log_storage, PooledSqliteEventLogStorage)
    assert (home / "dagster.yaml").read_text() == own


def test_a_running_runs_logs_stream_to_a_watcher(tmp_path):
    """The webserver streams a run's logs by watching its ``<run_id>.db``: events written through the
    pooled storage (by another instance, as a run worker is) must reach the watcher while the run goes on."""
    home = tmp_path / "home"
    ensure_instance_config(home)
    watcher = dg.DagsterInstance.from_config(str(home))
    writer = dg.DagsterInstance.from_config(str(home))
    run_id = str(uuid.uuid4())
    seen: list[str] = []
    got = threading.Event()
    wanted = 10

    def on_event(entry, _cursor):
        seen.append(entry.user_message)
        if len(seen) >= wanted:
            got.set()

    writer.event_log_storage.store_event(_entry(run_id, "start"))  # the run's shard exists, as when a run starts
    watcher.event_log_storage.watch(run_id, None, on_event)
    try:
        for i in range(wanted):
            writer.event_log_storage.store_event(_entry(run_id, f"step {i}"))
            time.sleep(0.05)
        assert got.wait(15), f"the watcher saw {len(seen)} of {wanted} events written while it watched"
    finally:
        watcher.event_log_storage.end_watch(run_id, on_event)
        watcher.dispose()
        writer.dispose()
    assert [m for m in seen if m != "start"] == [f"step {i}" for i in range(wanted)]


def _entry(run_id: str, message: str):
    from dagster._core.events.log import EventLogEntry

    return EventLogEntry(error_info=None, level=20, user_message=message, run_id=run_id, timestamp=time.time(),
                         step_key=None, job_name="bench", dagster_event=None)
