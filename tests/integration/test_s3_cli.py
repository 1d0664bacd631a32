"""Every ``growthlake`` command on an object-store root, run as a user runs them.

``GROWTHLAKE_ROOT=s3://<bucket>/lake`` on moto's S3 server (127.0.0.1), the standard ``AWS_*``
variables, a local folder (``GROWTHLAKE_LOCAL_DIR``) and a PII key — nothing else in the environment.
A simulated week goes through ``simulate`` → ``run`` (ingestion, silver, marts, features, loops: the
flags document is PUT to the bucket) → ``erase`` (landing objects rewritten, Delta history purged in
the bucket) → ``maintain`` (compaction and vacuum in the bucket). What a user would notice is checked:
exit codes, the objects in the bucket, the marts, the erased person's rows gone and nobody else's.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pytest

from lake import delta_io
from lake.ledger import read_ledger
from lake.paths import LakePaths
from lake.schemas import BRONZE_EVENTS, SILVER_EVENTS
from tests.integration.test_s3 import _objects, _s3, _truth

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("s3")]

GROWTHLAKE = str(Path(sys.executable).with_name("growthlake"))
USERS, DAYS, START = 100, 7, "2026-11-02"


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([GROWTHLAKE, *args], env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, (args, proc.returncode, proc.stdout[-3000:], proc.stderr[-3000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return proc


def _landing_holding(fs: pafs.S3FileSystem, prefix: str, needle: bytes) -> list[str]:
    found = []
    for rel in _objects(fs, f"{prefix}/landing/events"):
        with fs.open_input_stream(f"{prefix}/landing/events/{rel}") as src:
            if needle in src.read():
                found.append(rel)
    return found


def test_simulate_run_erase_maintain_on_an_s3_root(s3_settings, tmp_path, monkeypatch):
    from growth_loops.actuation import features_document_path, load_features_document

    bucket = f"growthlake-{secrets.token_hex(4)}"
    fs = _s3(s3_settings)
    fs.create_dir(bucket)
    root, local = f"s3://{bucket}/lake", tmp_path / "local"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "GROWTHLAKE_ROOT": root, "GROWTHLAKE_LOCAL_DIR": str(local),
           "GROWTHLAKE_PII_KEY": os.urandom(16).hex(), "DAGSTER_HOME": str(tmp_path / "dagster_home"),
           "DAGSTER_DISABLE_TELEMETRY": "1", "GX_ANALYTICS_ENABLED": "false", **s3_settings}
    (tmp_path / "dagster_home").mkdir()
    for name, value in env.items():  # for this process's own reads of the bucket
        if name != "PATH":
            monkeypatch.setenv(name, value)
    paths = LakePaths.from_root(root)
    prefix = f"{bucket}/lake"

    # simulate: the landing files and the simulator's truth are objects in the bucket, nothing local.
    out = _run(["simulate", "--users", str(USERS), "--days", str(DAYS), "--seed", "7", "--start", START], env).stdout
    files = int(re.search(r"lines in (\d+) files", out).group(1))
    landed = [p for p in _objects(fs, prefix) if p.startswith("landing/events/")]
    assert len(landed) == files > DAYS, out
    assert not local.exists() or not any(local.rglob("*.jsonl")), "landing files written locally"
    with fs.open_input_stream(f"{prefix}/simulator/truth/manifest.json") as src:
        manifest = json.loads(src.read())

    # run: the week, loops included, exits 0; the ledger says what the simulator says.
    out = _run(["run"], env).stdout
    keys = sorted(manifest["lines_by_hour"])
    truth = _truth(manifest, keys)
    assert re.search(rf"partitions reconciled\s+{len(keys)} / {len(keys)}", out), out[-3000:]
    assert "loops: 7 day(s) decided" in out, out[-3000:]
    ledger = read_ledger(paths, keys)
    assert pc.sum(ledger["lines_landed"]).as_py() == truth["lines"]
    bronze = delta_io.read(paths.bronze_events, BRONZE_EVENTS, columns=["event_id", "user_id", "anonymous_id"])
    assert bronze.num_rows == pc.count_distinct(bronze["event_id"]).as_py() == truth["bronze"]
    with duckdb.connect(str(local / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("select count(*) from marts.fct_daily_oec").fetchone()[0] == DAYS
        users_before = con.execute("select count(*) from marts.dim_users").fetchone()[0]
    # The flags document: PUT to the bucket, readable there with the SDK's shape.
    flags = features_document_path(paths)
    assert flags == f"{root}/actuation/flags/features.json"
    assert "features" in load_features_document(flags)
    assert "actuation/flags/features.json" in _objects(fs, prefix)

    # erase: the person with the most events is gone from landing, bronze, silver and the marts; nobody else.
    counts = pc.value_counts(pc.drop_null(bronze["user_id"])).to_pylist()
    subject = max(counts, key=lambda c: c["counts"])["values"]
    rows = bronze.to_pylist()
    devices = {r["anonymous_id"] for r in rows if r["user_id"] == subject}
    theirs = {r["event_id"] for r in rows if r["user_id"] == subject or r["anonymous_id"] in devices}
    assert _landing_holding(fs, prefix, subject.encode())
    out = _run(["erase", "--user", subject, "--reason", "test: user asked", "--yes"], env).stdout
    assert _landing_holding(fs, prefix, subject.encode()) == []
    after = delta_io.read(paths.bronze_events, BRONZE_EVENTS, columns=["event_id", "user_id"])
    assert set(after["event_id"].to_pylist()) == {r["event_id"] for r in rows} - theirs  # theirs, nobody else's
    silver = delta_io.read(paths.silver_events, SILVER_EVENTS, columns=["user_id"])
    assert pc.sum(pc.equal(silver["user_id"], subject)).as_py() in (0, None) and silver.num_rows == after.num_rows
    with duckdb.connect(str(local / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("select count(*) from marts.dim_users").fetchone()[0] == users_before - 1
    # History purged in the bucket: the first commits of bronze are gone (time travel to them is not possible).
    log = [p for p in _objects(fs, f"{prefix}/delta/bronze/events") if p.startswith("_delta_log/")]
    assert "_delta_log/00000000000000000000.json" not in log and any(p.endswith(".checkpoint.parquet") for p in log)
    assert "history purged" in out

    # maintain: compacts and vacuums in the bucket; the data reads the same.
    before_objects = len(_objects(fs, f"{prefix}/delta"))
    out = _run(["maintain", "--retention-hours", "0"], env).stdout
    m = re.search(r"(\d+) table\(s\): (\d+) -> (\d+) live files, (\d+) superseded file\(s\) deleted", out)
    assert m, out
    tables, live_before, live_after, vacuumed = map(int, m.groups())
    assert tables >= 20 and live_after < live_before and vacuumed >= live_before - live_after, out
    assert len(_objects(fs, f"{prefix}/delta")) < before_objects
    again = delta_io.read(paths.bronze_events, BRONZE_EVENTS, columns=["event_id"])
    assert sorted(again["event_id"].to_pylist()) == sorted(after["event_id"].to_pylist())
