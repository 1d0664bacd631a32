"""Replay: after the plan is fixed, quarantined lines move into bronze exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import orjson
import pyarrow.compute as pc
import pytest
import yaml
from deltalake import DeltaTable

from lake.contracts import DEFAULT_PLAN_PATH, check_version_bump, load_plan
from lake.ingest import ingest_partition
from lake.ledger import read_entry, verify_partition
from lake.replay import replay_quarantine
from tests.helpers import event, write_batch

KEY = "2026-11-02-05:00"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def fixed_plan(tmp_path):
    """The shipped plan plus what the collectors were already sending (an additive, minor bump)."""
    doc = yaml.safe_load(DEFAULT_PLAN_PATH.read_text())
    doc["events"]["page_viewed"]["properties"]["section"] = {"type": "string"}
    doc["events"]["user_signed_up"]["properties"]["coupon"] = {"type": "string"}
    doc["events"]["referral_sent"] = {"properties": {"channel": {"type": "string", "required": True}}}
    major, minor, _ = doc["version"].split(".")
    doc["version"] = f"{major}.{int(minor) + 1}.0"
    path = tmp_path / "tracking_plan.yaml"
    path.write_text(yaml.safe_dump(doc))
    return load_plan(path)


def _landing(paths):
    with_section = [event(props={"path": "/", "section": f"s{i}"}) for i in range(5)]
    referrals = [event("referral_sent", {"channel": "email"}) for _ in range(3)]
    signup = event("user_signed_up", {"method": "email", "email": "grace@example.com", "coupon": "WELCOME"},
                   user_id="u-9")
    clean_copy = dict(with_section[0], properties={"path": "/"})  # same event_id, delivered without the extra
    broken = event("onboarding_step_completed", {"step": "tour"})  # still invalid after the fix
    write_batch(paths, KEY, [*with_section, *referrals, signup, clean_copy, broken, event()])
    return with_section, referrals, signup


def _bronze(paths):
    return DeltaTable(paths.bronze_events).to_pyarrow_table()


def test_replay_moves_fixed_lines_exactly_once(paths, plan, masker, fixed_plan):
    check_version_bump(plan, fixed_plan)  # the fix is additive and correctly versioned
    with_section, referrals, signup = _landing(paths)
    first = ingest_partition(paths, KEY, plan=plan, masker=masker).ledger
    assert first.quarantined == 10 and first.bronze_rows == 2

    res = replay_quarantine(paths, plan=fixed_plan, masker=masker)
    assert (res.examined, res.replayed, res.duplicates) == (10, 8, 1)
    assert res.still_failing == {"required_missing": 1}

    bronze = _bronze(paths)
    ids = bronze["event_id"].to_pylist()
    assert len(ids) == len(set(ids)) == 10
    assert {e["event_id"] for e in with_section + referrals + [signup]} <= set(ids)
    replayed = bronze.filter(pc.equal(bronze["event_id"], signup["event_id"])).to_pylist()[0]
    assert replayed["_landing_partition"] == KEY and replayed["_line_number"] == 9
    # masked once at quarantine time, not hashed again on replay
    assert orjson.loads(replayed["properties"])["email"] == masker.hash("grace@example.com")
    assert replayed["ip_hash"] == masker.hash("203.0.113.7")

    entry = read_entry(paths, KEY)
    assert (entry.bronze_rows, entry.quarantined, entry.duplicates_dropped) == (10, 1, 1)
    assert verify_partition(paths, KEY).ok

    again = replay_quarantine(paths, plan=fixed_plan, masker=masker)
    assert (again.examined, again.replayed) == (1, 0)
    assert _bronze(paths).num_rows == 10
    # and re-materializing the hour under the fixed plan agrees with the replayed state
    rerun = ingest_partition(paths, KEY, plan=fixed_plan, masker=masker)
    assert (rerun.bronze_appended, rerun.quarantine_appended) == (0, 0)
    assert verify_partition(paths, KEY).ok


@pytest.mark.slow
@pytest.mark.parametrize("failpoint", ["after_replay_bronze_commit", "after_replay_resolve"])
def test_replay_killed_mid_way_then_rerun(paths, plan, masker, fixed_plan, failpoint):
    _landing(paths)
    ingest_partition(paths, KEY, plan=plan, masker=masker)
    env = dict(os.environ, PYTHONPATH=str(REPO), GROWTHLAKE_FAILPOINT=failpoint)
    cmd = [sys.executable, "-m", "orchestration.cli", "replay-quarantine", "--root", paths.root,
           "--tracking-plan", fixed_plan.source]
    crashed = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    env.pop("GROWTHLAKE_FAILPOINT")
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    if failpoint == "after_replay_resolve":
        # every quarantine row was already resolved; the ledger is refreshed by re-materializing
        assert not verify_partition(paths, KEY).ok
        ingest_partition(paths, KEY, plan=fixed_plan, masker=masker)
    ids = _bronze(paths)["event_id"].to_pylist()
    assert len(ids) == len(set(ids)) == 10
    assert verify_partition(paths, KEY).ok
