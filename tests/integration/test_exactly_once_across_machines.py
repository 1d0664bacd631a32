"""Exactly once without a shared lock: writers on separate "machines" (processes with separate
lock folders, so the per-machine ``flock`` serializes nothing between them) race on the same
landing hours, and on hours that share a redelivered event_id — on a local root and on an
S3-compatible server (moto on 127.0.0.1). Every valid event must be in bronze once, every
quarantined line once, every hour's ledger must reconcile, and silver (built by the racing
machines too) must hold every bronze event once.

The race must really happen for the test to mean something: each round starts the machines at a
barrier, and across the rounds at least one hour must have been committed by two machines or one
machine's commit must have been refused because another committed first.
"""

from __future__ import annotations

import multiprocessing
import os
import secrets
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.fs as pafs
import pytest

from lake import delta_io
from lake.ledger import read_ledger, verify_partitions
from lake.paths import LakePaths
from lake.schemas import BRONZE_EVENTS, BRONZE_QUARANTINE, SILVER_EVENTS
from tests.helpers import write_hours

pytestmark = pytest.mark.slow

DAY = "2026-11-02"
HOURS = 3
# Each machine's order of the hours: two take the same hour at once, the third starts on the hour
# that holds a redelivery of the first hour's first event.
ORDERS = ([0, 1, 2], [0, 1, 2], [1, 2, 0])


def _keys() -> list[str]:
    return [f"{DAY}-{h:02d}:00" for h in range(HOURS)]


def _machine(env: dict[str, str], hours: list[str], barrier) -> dict:
    """One machine: its own lock folder; ingests ``hours`` one by one, then builds silver.
    Returns per hour (rows it appended to bronze, commits another writer made it re-decide), and
    the errors it met under ``errors``."""
    os.environ.update(env)
    from expectations import warm_up
    from lake.contracts import load_plan
    from lake.ingest import ingest_partition
    from lake.pii import PiiMasker, pii_key_from_env
    from lake.silver import build_silver

    paths = LakePaths.from_root()
    plan, masker = load_plan(), PiiMasker(pii_key_from_env(paths))
    warm_up()
    barrier.wait()
    out: dict = {"errors": []}
    for key in hours:  # an hour that fails is reported, and the machine goes on (as a schedule would)
        try:
            result = ingest_partition(paths, key, plan=plan, masker=masker)
            out[key] = (result.bronze_appended, getattr(result, "conflicts", 0))
        except Exception as exc:
            out[key] = (0, 0)
            out["errors"].append(f"{key}: {type(exc).__name__}: {exc}")
    try:
        build_silver(paths)
    except Exception as exc:
        out["errors"].append(f"silver: {type(exc).__name__}: {exc}")
    return out


def _race(env: dict[str, str], tmp_path: Path, pool: ProcessPoolExecutor, barrier) -> list[dict]:
    futures = [pool.submit(_machine, {**env, "GROWTHLAKE_LOCK_DIR": str(tmp_path / f"machine-{m}")},
                           [_keys()[h] for h in order], barrier)
               for m, order in enumerate(ORDERS)]
    return [f.result(timeout=600) for f in futures]


def _raced(outcomes: list[dict]) -> bool:
    """Two machines committed rows of the same hour, or a commit was refused for a concurrent one."""
    return any(sum(o[key][0] > 0 for o in outcomes) > 1 for key in _keys()) or \
        any(o[key][1] > 0 for o in outcomes for key in _keys())


def _assert_exactly_once(paths: LakePaths, truth: dict, outcomes: list[dict]) -> None:
    ids = delta_io.read(paths.bronze_events, BRONZE_EVENTS, columns=["event_id"])["event_id"]
    assert len(ids) - pc.count_distinct(ids).as_py() == 0, "events kept twice in bronze"
    assert set(ids.to_pylist()) == truth["valid"], "an event was lost (or invented)"
    quarantine = delta_io.read(paths.bronze_quarantine, BRONZE_QUARANTINE, columns=["source_file", "line_number"])
    lines = list(zip(quarantine["source_file"].to_pylist(), quarantine["line_number"].to_pylist(), strict=True))
    assert len(lines) == len(set(lines)) == truth["quarantined"], "a quarantined line kept twice (or lost)"
    for key, rec in verify_partitions(paths, _keys()).items():
        assert rec.ok, (key, rec.detail)
    ledger = read_ledger(paths, _keys())
    assert pc.sum(ledger["lines_landed"]).as_py() == truth["lines"]
    assert pc.sum(ledger["duplicates_dropped"]).as_py() == truth["duplicates"]
    assert pc.sum(ledger["consent_dropped"]).as_py() == truth["consent"]
    silver = delta_io.read(paths.silver_events, SILVER_EVENTS, columns=["event_id"])["event_id"]
    assert len(silver) == pc.count_distinct(silver).as_py() == len(ids), "silver holds an event twice (or lost one)"
    assert [e for o in outcomes for e in o["errors"]] == [], "a machine's run failed"


def _pool_and_barrier(manager, ctx) -> tuple[ProcessPoolExecutor, object]:
    return ProcessPoolExecutor(len(ORDERS), mp_context=ctx), manager.Barrier(len(ORDERS))


def test_machines_racing_on_a_local_root_keep_each_event_once(tmp_path, pii_key):
    ctx = multiprocessing.get_context("spawn")
    outcomes: list[dict] = []
    with ctx.Manager() as manager:
        for r in range(3):
            root = tmp_path / f"round-{r}"
            paths = LakePaths.from_root(root)
            truth = write_hours(paths, DAY, hours=HOURS, per_hour=400)
            env = {"GROWTHLAKE_ROOT": str(root), "GROWTHLAKE_PII_KEY": pii_key}
            pool, barrier = _pool_and_barrier(manager, ctx)
            with pool:
                outcomes += (raced := _race(env, tmp_path / f"locks-{r}", pool, barrier))
            _assert_exactly_once(paths, truth, raced)
    assert _raced(outcomes), f"the machines never raced, the test proves nothing: {outcomes}"


def _upload(local: Path, fs: pafs.FileSystem, target: str) -> None:
    pafs.copy_files(str(local), target, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=fs)


def test_machines_racing_on_an_object_store_keep_each_event_once(s3_settings, tmp_path, pii_key, monkeypatch):
    """The same race with the lake in a bucket of an S3-compatible server: the fenced commits rely
    only on delta-rs's conditional put of each log version (no locking provider, no unsafe rename)."""
    for name, value in s3_settings.items():
        monkeypatch.setenv(name, value)
    fs = pafs.S3FileSystem(access_key=s3_settings["AWS_ACCESS_KEY_ID"],
                           secret_key=s3_settings["AWS_SECRET_ACCESS_KEY"], region=s3_settings["AWS_REGION"],
                           endpoint_override=s3_settings["AWS_ENDPOINT_URL"], scheme="http",
                           allow_bucket_creation=True)
    ctx = multiprocessing.get_context("spawn")
    outcomes: list[dict] = []
    with ctx.Manager() as manager:
        for r in range(2):
            bucket = f"growthlake-race-{secrets.token_hex(4)}"
            fs.create_dir(bucket)
            staging = LakePaths.from_root(tmp_path / f"landing-{r}")
            truth = write_hours(staging, DAY, hours=HOURS, per_hour=400)
            _upload(Path(staging.landing_events), fs, f"{bucket}/lake/landing/events")
            env = {**s3_settings, "GROWTHLAKE_ROOT": f"s3://{bucket}/lake", "GROWTHLAKE_PII_KEY": pii_key,
                   "GROWTHLAKE_LOCAL_DIR": str(tmp_path / f"local-{r}")}
            monkeypatch.setenv("GROWTHLAKE_ROOT", env["GROWTHLAKE_ROOT"])
            monkeypatch.setenv("GROWTHLAKE_LOCAL_DIR", env["GROWTHLAKE_LOCAL_DIR"])
            pool, barrier = _pool_and_barrier(manager, ctx)
            with pool:
                outcomes += (raced := _race(env, tmp_path / f"locks-{r}", pool, barrier))
            _assert_exactly_once(LakePaths.from_root(), truth, raced)
    assert _raced(outcomes), f"the machines never raced, the test proves nothing: {outcomes}"
