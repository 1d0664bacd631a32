"""Distributed execution: hourly partitions ingested side by side on two Celery worker processes.

A Redis broker on 127.0.0.1 (started by the ``redis_url`` fixture), two ``celery`` workers
(``-P solo``: each step runs in the worker's own process) and a persistent Dagster instance
(SQLite in a temporary ``DAGSTER_HOME``, shared by the runs and the workers). Several hours are
launched at once with ``hourly_ingestion_celery``; their steps land on both workers and write the
same Delta tables concurrently. The event log proves where each step ran; the tables prove every
event is there exactly once — including the redeliveries that sit in two hours ingested at once.

The second test is the deployment of DEPLOY.md: Dagster's run, event and schedule storage in a real
PostgreSQL server (``initdb`` in a temporary folder, 127.0.0.1), a backfill's ranged run and hourly
runs in flight at once on the two workers, and the writer steps in the ``growthlake_writers`` pool
(declared on the assets, limited to 1 in the instance): the pool as Postgres holds it and the event
log show one writer step at a time, and the ledger reconciles.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import pyarrow.compute as pc
import pytest

from lake import delta_io
from lake.ledger import read_ledger, verify_partition
from lake.schemas import BRONZE_EVENTS, SILVER_EVENTS
from tests.helpers import stop_process, write_hours

pytest.importorskip("dagster_celery",
                    reason="dagster-celery is not installed (pip install -c constraints.txt -e '.[test]')")
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("celery"),
              # dagster-celery's own
              pytest.mark.filterwarnings("ignore:Task name 'execute_plan' is already registered")]

DAY = "2026-11-02"
HOURS = 4
WORKERS = ("w1", "w2")


def _start_worker(name: str, broker: str, env: dict[str, str], log: Path) -> subprocess.Popen:
    celery = Path(sys.executable).with_name("celery")
    argv = [str(celery), "-A", "dagster_celery.app", "-b", broker, "--result-backend", broker, "worker",
            "-Q", "dagster", "-P", "solo", "-n", f"{name}@%h", "--prefetch-multiplier", "1",
            "--without-heartbeat", "--without-gossip", "--without-mingle", "-l", "INFO",
            "-I", "orchestration.celery"]
    with log.open("wb") as out:
        return subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                cwd=Path(__file__).resolve().parents[2])


def _stop(proc: subprocess.Popen) -> None:
    stop_process(proc, timeout=20)


def _wait_ready(procs: dict[str, subprocess.Popen], logs: dict[str, Path], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        pending = [n for n in procs if "ready." not in logs[n].read_text(errors="replace")]
        if not pending:
            return
        for n in pending:
            if procs[n].poll() is not None:
                raise RuntimeError(f"celery worker {n} exited: {logs[n].read_text(errors='replace')[-3000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"celery workers {pending} not ready within {timeout:.0f}s")
        time.sleep(0.2)


@contextmanager
def _workers(broker: str, tmp_path: Path) -> Iterator[dict[str, Path]]:
    """The two Celery workers, ready, for the block (stopped by PID after it); yields their log files."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[2]),
                                                                     os.environ.get("PYTHONPATH")]))}
    logs = {n: tmp_path / f"celery-{n}.log" for n in WORKERS}
    procs = {n: _start_worker(n, broker, env, logs[n]) for n in WORKERS}
    try:
        _wait_ready(procs, logs)
        yield logs
    finally:
        for proc in procs.values():
            _stop(proc)


def _steps(instance: dg.DagsterInstance, run_id: str) -> list[dict]:
    """Per step of a run: the Celery worker that took it, the PID it ran in, and when."""
    out: dict[str, dict] = {}
    for rec in instance.all_logs(run_id):
        ev = rec.dagster_event
        if ev is None or ev.step_key is None:
            continue
        step = out.setdefault(ev.step_key, {"step": ev.step_key})
        if ev.event_type == dg.DagsterEventType.ENGINE_EVENT and "Celery worker" in ev.engine_event_data.metadata:
            step["worker"] = ev.engine_event_data.metadata["Celery worker"].value  # the worker's node name
        elif ev.event_type == dg.DagsterEventType.STEP_START:
            step["pid"], step["start"] = ev.pid, rec.timestamp
        elif ev.event_type == dg.DagsterEventType.STEP_SUCCESS:
            step["end"] = rec.timestamp
    return list(out.values())


def test_hourly_partitions_run_in_parallel_on_two_celery_workers(redis_url, tmp_path, monkeypatch, paths):
    from orchestration.celery import hourly_ingestion_on_celery

    home = tmp_path / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("GROWTHLAKE_CELERY_BROKER", redis_url)
    truth = write_hours(paths, DAY, hours=HOURS, per_hour=30)
    keys = [f"{DAY}-{h:02d}:00" for h in range(HOURS)]

    with _workers(redis_url, tmp_path) as logs:
        with dg.DagsterInstance.get() as instance:
            job = dg.reconstructable(hourly_ingestion_on_celery)

            def launch(key: str) -> dg.JobExecutionResult:
                return dg.execute_job(job, instance=instance, tags={"dagster/partition": key})

            with ThreadPoolExecutor(len(keys)) as pool:  # every hour at once, like a backfill
                results = list(pool.map(launch, keys))
            assert [r.success for r in results] == [True] * HOURS, [logs[n].read_text()[-2000:] for n in WORKERS]
            steps = [s | {"run": r.run_id} for r in results for s in _steps(instance, r.run_id)]

    # Where the steps ran: every step of every hour on a worker, both workers, two processes (not this one).
    per_run: dict[str, set[str]] = {}
    for s in steps:
        per_run.setdefault(s["run"], set()).add(s["step"])
    assert len(per_run) == HOURS and len({frozenset(v) for v in per_run.values()}) == 1
    assert all({"worker", "pid", "start", "end"} <= s.keys() for s in steps), "\n".join(map(str, steps))
    assert {s["worker"].split("@")[0] for s in steps} == set(WORKERS), steps
    pids = {s["pid"] for s in steps}
    assert len(pids) == 2 and os.getpid() not in pids, pids
    # Side by side: steps of different hours overlapped in time on the two workers.
    assert any(a["worker"] != b["worker"] and a["run"] != b["run"] and a["start"] < b["end"] and b["start"] < a["end"]
               for a in steps for b in steps), "no two steps ran at the same time"

    # Every event exactly once, though hours sharing a redelivered event were ingested at once.
    _assert_exactly_once(paths, keys, truth)


def test_the_celery_code_location_adds_the_celery_job_and_keeps_the_default_jobs_in_process(tmp_path):
    from orchestration.celery import HOURLY_CELERY_JOB, build_celery_definitions
    from orchestration.resources import LakeResource

    defs = build_celery_definitions(lake=LakeResource(root=str(tmp_path / "lake")))

    default, celery = defs.resolve_job_def("hourly_ingestion"), defs.resolve_job_def(HOURLY_CELERY_JOB)
    assert default.executor_def.name == "in_process" and celery.executor_def.name == "growthlake_celery"
    assert celery.asset_layer.executable_asset_keys == default.asset_layer.executable_asset_keys
    checks = {c.name for c in celery.asset_layer.asset_graph.asset_check_keys}
    assert checks >= {"ledger_reconciles", "gx_silver_events"}
    assert {h.name for h in celery.hook_defs} == {h.name for h in default.hook_defs}  # the trust hooks


# -- Dagster on PostgreSQL: a backfill and the hourly runs on two workers, writers in one pool --------

PG_DAY = "2026-11-03"
PG_HOURS = 6


def _postgres_instance_yaml(home: Path, url: str, db: str) -> None:
    """``$DAGSTER_HOME/dagster.yaml`` with run, event-log and schedule storage in Postgres, as DEPLOY.md
    shows it (``scheme: postgresql+psycopg2``: SQLAlchemy 2.1 reads a bare ``postgresql://`` as psycopg 3,
    which dagster-postgres does not bring)."""
    from urllib.parse import urlsplit

    import yaml

    parts = urlsplit(url)
    home.joinpath("dagster.yaml").write_text(yaml.safe_dump({
        "storage": {"postgres": {"postgres_db": {
            "hostname": parts.hostname, "port": parts.port, "db_name": db, "username": parts.username,
            "scheme": "postgresql+psycopg2"}}},
        "telemetry": {"enabled": False},
    }))


def _execute_celery_run(tags: dict[str, str]) -> tuple[str, bool]:
    """One run of the Celery hourly job on ``$DAGSTER_HOME``'s instance (in a spawned process): its id and verdict."""
    from orchestration.celery import hourly_ingestion_on_celery

    with dg.DagsterInstance.get() as instance:
        result = dg.execute_job(dg.reconstructable(hourly_ingestion_on_celery), instance=instance, tags=tags)
        return result.run_id, result.success


def test_a_backfill_on_two_celery_workers_with_postgres_storage_keeps_the_writer_pool(
        redis_url, postgres_url, tmp_path, monkeypatch, paths):
    import threading

    import psycopg2
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage

    from orchestration.bronze.partitions import WRITER_POOL
    from orchestration.hours import HOUR_RANGE_TAGS

    db = f"dagster_{os.getpid()}_{int(time.time())}"
    conn = psycopg2.connect(postgres_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{db}"')  # a name this test made, not input
    conn.close()
    home = tmp_path / "dagster_home"
    home.mkdir()
    _postgres_instance_yaml(home, postgres_url, db)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("GROWTHLAKE_CELERY_BROKER", redis_url)
    truth = write_hours(paths, PG_DAY, hours=PG_HOURS, per_hour=25)
    keys = [f"{PG_DAY}-{h:02d}:00" for h in range(PG_HOURS)]
    # What a backfill of the first three hours makes (one ranged run, the hourly backfill policy), while
    # the schedule's one-hour runs of the next three hours arrive: four runs in flight at once.
    runs_tags = [{HOUR_RANGE_TAGS[0]: keys[0], HOUR_RANGE_TAGS[1]: keys[2]}] + [
        {"dagster/partition": k} for k in keys[3:]]

    with _workers(redis_url, tmp_path) as logs:
        with dg.DagsterInstance.get() as instance:
            assert isinstance(instance.run_storage, PostgresRunStorage)
            assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
            # `dagster instance concurrency set growthlake_writers 1`: the pool is declared on the assets,
            # its limit lives in the instance (shared by every machine using this database).
            instance.event_log_storage.set_concurrency_slots(WRITER_POOL, 1)
            seen = {"claimed": 0, "pending": 0}
            done = threading.Event()

            def watch() -> None:  # the pool as the instance holds it, while the runs go
                while not done.is_set():
                    info = instance.event_log_storage.get_concurrency_info(WRITER_POOL)
                    seen["claimed"] = max(seen["claimed"], info.active_slot_count)
                    seen["pending"] = max(seen["pending"], info.pending_step_count)
                    time.sleep(0.05)

            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
            try:  # each run in a process of its own, as a run launcher starts them (and not threads of one:
                # Dagster's per-run logging set-up and psycopg's connection logging deadlock on logging's locks)
                with ProcessPoolExecutor(len(runs_tags), mp_context=multiprocessing.get_context("spawn")) as pool:
                    results = list(pool.map(_execute_celery_run, runs_tags))
            finally:
                done.set()
                watcher.join(timeout=10)
            assert [ok for _, ok in results] == [True] * len(runs_tags), \
                [logs[n].read_text()[-2000:] for n in WORKERS]
            steps = [s | {"run": run_id} for run_id, _ in results for s in _steps(instance, run_id)]
            after = instance.event_log_storage.get_concurrency_info(WRITER_POOL)
            stored_runs = instance.get_runs()

    # The runs, their events and the pool are in Postgres: this instance is the only one there is.
    assert {r.run_id for r in stored_runs} == {run_id for run_id, _ in results}
    assert {r.status for r in stored_runs} == {dg.DagsterRunStatus.SUCCESS}
    assert all({"worker", "pid", "start", "end"} <= s.keys() for s in steps), "\n".join(map(str, steps))
    assert {s["worker"].split("@")[0] for s in steps} == set(WORKERS), steps
    # The pool was honoured: never more than one writer step holding a slot, others waited for it,
    # and the writer steps' [start, end] never overlapped, though four runs were in flight on two workers.
    writers = [s for s in steps if s["step"] in ("ingest_landing_hour", "build_silver_hour")]
    assert len(writers) == 2 * len(runs_tags)
    assert seen["claimed"] == 1 and seen["pending"] >= 1, seen
    assert after.active_slot_count == 0 and after.pending_step_count == 0
    overlapping = [(a["run"], a["step"], b["run"], b["step"]) for i, a in enumerate(writers) for b in writers[i + 1:]
                   if a["start"] < b["end"] and b["start"] < a["end"]]
    assert not overlapping, overlapping

    # The data: every event exactly once, every hour's ledger reconciles.
    _assert_exactly_once(paths, keys, truth)


def _assert_exactly_once(paths, keys: list[str], truth: dict) -> None:
    """Bronze and silver hold every valid event once, the ledger's totals are the truth's (``write_hours``),
    and every hour reconciles."""
    bronze = delta_io.read(paths.bronze_events, BRONZE_EVENTS, columns=["event_id"])
    assert bronze.num_rows == pc.count_distinct(bronze["event_id"]).as_py() == len(truth["valid"])
    assert set(bronze["event_id"].to_pylist()) == truth["valid"]
    silver = delta_io.read(paths.silver_events, SILVER_EVENTS, columns=["event_id"])
    assert set(silver["event_id"].to_pylist()) == truth["valid"] and silver.num_rows == len(truth["valid"])
    ledger = read_ledger(paths, keys)
    assert pc.sum(ledger["lines_landed"]).as_py() == truth["lines"]
    assert pc.sum(ledger["duplicates_dropped"]).as_py() == truth["duplicates"]
    assert pc.sum(ledger["quarantined"]).as_py() == truth["quarantined"]
    assert pc.sum(ledger["consent_dropped"]).as_py() == truth["consent"]
    for key in keys:
        rec = verify_partition(paths, key)
        assert rec.ok, (key, rec.detail)
