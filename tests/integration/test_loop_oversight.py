"""Approvals and the audit log on real Delta tables: append-only, idempotent, final verdicts."""

from __future__ import annotations

import datetime as dt

import pytest

from growth_loops.loops import LoopError, approvals, audit
from lake import delta_io

NOW = dt.datetime(2026, 11, 20, 9, tzinfo=dt.UTC)


def _record(day: dt.date, person: str, action: str = "guided") -> audit.AuditRecord:
    return audit.AuditRecord(
        decision_id=audit.decision_id("onboarding", day, "action", person), decision_day=day, loop="onboarding",
        kind="action", policy_version="ts-v3", person_id=person, action=action, propensity=0.6,
        feature_snapshot="user_features@2026-11-19#v12", guardrail_verdict="pass", approval_state="approved",
        actor="loop:onboarding", decided_at=NOW)


def test_the_audit_log_records_each_decision_once(paths):
    day = NOW.date()
    assert audit.record(paths, [_record(day, "u1"), _record(day, "u2")]) == 2
    version = delta_io.version(paths.audit_log)
    # Re-running the day's decisions (a retry, a crash resume) adds nothing and commits nothing.
    assert audit.record(paths, [_record(day, "u1"), _record(day, "u2")]) == 0
    assert delta_io.version(paths.audit_log) == version
    assert audit.record(paths, [_record(day, "u3")]) == 1
    log = audit.read_audit(paths, loop="onboarding")
    assert sorted(log["person_id"]) == ["u1", "u2", "u3"]
    assert log.height == 3 and set(log["propensity"]) == {0.6}


def test_a_propensity_outside_zero_one_is_refused():
    with pytest.raises(LoopError, match="propensity"):
        audit.AuditRecord(decision_id="x", decision_day=NOW.date(), loop="l", kind="action", policy_version="v",
                          feature_snapshot="s", guardrail_verdict="pass", approval_state="approved", actor="a",
                          decided_at=NOW, propensity=0.0)


def test_a_version_acts_only_after_approval_and_verdicts_are_final(paths):
    assert approvals.state(paths, "churn", "v2") is None
    assert approvals.request(paths, "churn", "v2", evidence={"auc": 0.71}, now=NOW) == "pending"
    assert approvals.request(paths, "churn", "v2", evidence={"auc": 0.99}, now=NOW) == "pending"  # idempotent
    assert approvals.list_approvals(paths, only="pending")["version"].to_list() == ["v2"]

    approvals.approve(paths, "churn", "v2", actor="maria", reason="offline eval ok",
                      now=NOW + dt.timedelta(hours=1))
    assert approvals.state(paths, "churn", "v2") == "approved"
    with pytest.raises(LoopError, match="already approved"):
        approvals.reject(paths, "churn", "v2", actor="bob", reason="changed my mind")
    with pytest.raises(LoopError, match="no approval was requested"):
        approvals.approve(paths, "churn", "v9", actor="maria")

    approvals.request(paths, "churn", "v3", evidence={}, now=NOW)
    with pytest.raises(LoopError, match="no reason"):
        approvals.reject(paths, "churn", "v3", actor="bob", reason=" ")
    approvals.reject(paths, "churn", "v3", actor="bob", reason="guardrail too loose", now=NOW)
    listed = approvals.list_approvals(paths, loop="churn")
    assert dict(zip(listed["version"], listed["state"], strict=True)) == {"v2": "approved", "v3": "rejected"}
    # Each request and verdict is in the audit log, with its actor.
    trail = audit.read_audit(paths, loop="churn", kind="approval")
    assert sorted(zip(trail["policy_version"], trail["approval_state"], trail["actor"], strict=True)) == [
        ("v2", "approved", "maria"), ("v2", "pending", "loop:churn"),
        ("v3", "pending", "loop:churn"), ("v3", "rejected", "bob")]


def test_the_cli_lists_approves_and_rejects(paths, capsys, monkeypatch):
    from orchestration.cli import main

    monkeypatch.setenv("GROWTHLAKE_ACTOR", "maria")
    approvals.request(paths, "trial_nudge", "exp-v1", evidence={"arms": 2}, now=NOW)
    approvals.request(paths, "churn", "v2", evidence={}, now=NOW)
    assert main(["approvals", "list", "--root", paths.root]) == 0
    listed = capsys.readouterr().out
    assert "trial_nudge" in listed and "exp-v1" in listed and "pending" in listed
    assert main(["approvals", "approve", "trial_nudge", "exp-v1", "--root", paths.root]) == 0
    assert approvals.state(paths, "trial_nudge", "exp-v1") == "approved"
    assert audit.read_audit(paths, loop="trial_nudge", kind="approval")["actor"].to_list()[-1] == "maria"
    # Rejecting without a reason is refused by the parser; approving twice by the store.
    with pytest.raises(SystemExit):
        main(["approvals", "reject", "churn", "v2", "--root", paths.root])
    assert main(["approvals", "approve", "trial_nudge", "exp-v1", "--root", paths.root]) == 2
    assert "already approved" in capsys.readouterr().err
    assert main(["approvals", "reject", "churn", "v2", "--reason", "too broad", "--root", paths.root]) == 0
    assert main(["approvals", "list", "--root", paths.root]) == 0
    assert "no pending approvals" in capsys.readouterr().out
