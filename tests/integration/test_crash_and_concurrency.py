"""Exactly once under kill -9 and overlapping backfills, with real subprocesses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable

from lake.ledger import read_ledger, verify_partition
from tests.helpers import write_hours

REPO = Path(__file__).resolve().parents[2]
DAY = "2026-11-02"
INGEST = (
    "import sys\n"
    "from lake.paths import LakePaths\nfrom lake.contracts import load_plan\n"
    "from lake.pii import PiiMasker, pii_key_from_env\nfrom lake.ingest import ingest_partition\n"
    "p = LakePaths.from_root()\nplan = load_plan()\nm = PiiMasker(pii_key_from_env(p))\n"
    "for k in sys.argv[1:]:\n    ingest_partition(p, k, plan=plan, masker=m)\n"
)

pytestmark = pytest.mark.slow


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    env.pop("GROWTHLAKE_FAILPOINT", None)
    env.update(extra)
    return env


def _keys(hours: int) -> list[str]:
    return [f"{DAY}-{h:02d}:00" for h in range(hours)]


def _assert_exactly_once(paths, truth, keys):
    ids = DeltaTable(paths.bronze_events).to_pyarrow_table(columns=["event_id"])["event_id"]
    assert len(ids) == pc.count_distinct(ids).as_py(), "an event is in bronze twice"
    assert set(ids.to_pylist()) == truth["valid"], "an event was lost (or invented)"
    quarantine = DeltaTable(paths.bronze_quarantine).to_pyarrow_table(columns=["source_file", "line_number"])
    lines = list(zip(quarantine["source_file"].to_pylist(), quarantine["line_number"].to_pylist(), strict=True))
    assert len(lines) == len(set(lines)) == truth["quarantined"]
    for key in keys:
        rec = verify_partition(paths, key)
        assert rec.ok, (key, rec.detail)
    ledger = read_ledger(paths, keys)
    assert pc.sum(ledger["lines_landed"]).as_py() == truth["lines"]
    assert pc.sum(ledger["duplicates_dropped"]).as_py() == truth["duplicates"]
    assert pc.sum(ledger["consent_dropped"]).as_py() == truth["consent"]


@pytest.mark.parametrize("failpoint", ["after_bronze_commit", "after_quarantine_commit"])
def test_kill_9_between_commits_then_rerun(paths, failpoint):
    truth = write_hours(paths, DAY, hours=3, per_hour=200)
    keys = _keys(3)
    crashed = subprocess.run([sys.executable, "-c", INGEST, *keys], cwd=REPO, env=_env(GROWTHLAKE_FAILPOINT=failpoint),
                             capture_output=True, text=True, timeout=120)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    assert DeltaTable(paths.bronze_events).to_pyarrow_table().num_rows == 200  # the first commit made it
    assert not verify_partition(paths, keys[0]).ok  # and the partition is visibly unfinished

    done = subprocess.run([sys.executable, "-c", INGEST, *keys], cwd=REPO, env=_env(), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    _assert_exactly_once(paths, truth, keys)


def test_kill_9_at_arbitrary_moments_of_a_cli_run_then_rerun(paths):
    truth = write_hours(paths, DAY, hours=12, per_hour=400)
    keys = _keys(12)
    cmd = [sys.executable, "-m", "orchestration.cli", "run", "--root", paths.root, "--from", keys[0], "--to", keys[-1],
           "--no-warehouse"]
    for delay in (3.0, 4.5, 6.0):
        proc = subprocess.Popen(cmd, cwd=REPO, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    final = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stdout[-2000:] + final.stderr[-2000:]
    _assert_exactly_once(paths, truth, keys)


def test_overlapping_backfills_run_concurrently(paths):
    truth = write_hours(paths, DAY, hours=10, per_hour=300)
    keys = _keys(10)
    a = [sys.executable, "-m", "orchestration.cli", "run", "--root", paths.root, "--no-warehouse", "--from", keys[0],
         "--to", keys[6]]
    b = [sys.executable, "-m", "orchestration.cli", "run", "--root", paths.root, "--no-warehouse", "--from", keys[3],
         "--to", keys[9]]
    procs = [subprocess.Popen(c, cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for c in (a, b)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    _assert_exactly_once(paths, truth, keys)
    # and re-running the whole range afterwards changes nothing
    before = DeltaTable(paths.bronze_events).version()
    again = subprocess.run([*a[:-4], "--from", keys[0], "--to", keys[9]], cwd=REPO, env=_env(), capture_output=True,
                           text=True, timeout=300)
    assert again.returncode == 0
    assert DeltaTable(paths.bronze_events).version() == before, "a rerun must not write to bronze"
    _assert_exactly_once(paths, truth, keys)
