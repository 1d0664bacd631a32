"""Autonomy follows evidence, and any live loop can be stopped at once.

* ``growthlake loops stop`` sends every unit of a live (approved) loop to control in the published
  GrowthBook document in one command — checked with the real ``growthbook`` SDK reading it — and
  withholds the loop's pending messages; nightly runs keep it stopped; ``resume`` reverses it.
* Without a person approving anything (as in ``make demo``), no loop acts on everyone: human loops
  wait, auto loops stay canaries because their guardrails are not powered yet; an auto loop leaves
  its canary only after ``stable_days`` of powered, passing verdicts, and never without guardrails.
"""

from __future__ import annotations

import datetime as dt
import json

import polars as pl
import pytest
from growthbook import GrowthBook

from growth_loops.actuation import (
    OutboxMessage,
    enqueue,
    features_document_path,
    load_features_document,
    pending,
)
from growth_loops.loops import approvals, audit, runtime
from growth_loops.loops.catalog import ChurnPrevention, OnboardingBandit
from growth_loops.loops.guardrails import GuardrailVerdict
from growth_loops.loops.runtime import LoopSettings, run_decisions
from orchestration.cli import main
from orchestration.closed_loop import decisions_frame, run_closed_loop
from simulation.closed_loop import ClosedLoopConfig

pytestmark = pytest.mark.slow

START = dt.date(2026, 3, 2)
CONFIG = ClosedLoopConfig(arrivals_per_day=300, trial_days=3, extra_sessions_per_day=0.4, actions_per_session=1.0)
IDS = [f"usr_{i:05d}" for i in range(3000)]


def _served(paths, flag: str) -> dict[str, str]:
    """What a product running the GrowthBook SDK on the published document serves each id."""
    doc = load_features_document(features_document_path(paths))
    return {uid: GrowthBook(attributes={"id": uid}, features=doc["features"]).get_feature_value(flag, "missing")
            for uid in IDS}


def test_loops_stop_sends_a_live_loop_to_control_in_one_command_and_resume_reverses_it(paths, capsys, monkeypatch):
    def approve(day, runs):
        for run in runs:
            if run.status == "awaiting_approval":
                approvals.approve(paths, run.loop, run.policy_version, actor="maria@growth", reason="reviewed")

    run_closed_loop(paths, start=START, days=2, seed=9, config=CONFIG, settings=LoopSettings(), on_day=approve)
    assert approvals.state(paths, "paywall", "exp-v1") == "approved"
    before = _served(paths, "paywall_variant")
    assert set(before.values()) == {"control", "discount_popup"}  # live: the SDK buckets people into the test
    onboarding_before = load_features_document(features_document_path(paths))["features"]["onboarding_variant"]
    # Pending messages of the nudge loop (what the email sender would read next).
    consented = ["usr_a", "usr_b"]
    enqueue(paths, [OutboxMessage(loop="trial_nudge", decision_id=f"x:{p}", decision_day=START + dt.timedelta(days=1),
                                  person_id=p, template="trial_nudge") for p in consented], consented=consented)
    assert pending(paths, loop="trial_nudge").height >= 2

    monkeypatch.setenv("GROWTHLAKE_ACTOR", "oncall@growth")
    # A verdict is final: rejecting the live version is refused, and the answer points at the kill switch.
    assert main(["approvals", "reject", "paywall", "exp-v1", "--reason", "revenue alert", "--root", paths.root]) == 2
    assert "growthlake loops stop paywall" in capsys.readouterr().err

    assert main(["loops", "stop", "paywall", "--reason", "revenue alert", "--root", paths.root]) == 0
    assert "stopped paywall" in capsys.readouterr().out
    assert set(_served(paths, "paywall_variant").values()) == {"control"}  # everyone, at once
    doc = load_features_document(features_document_path(paths))
    assert doc["features"]["onboarding_variant"] == onboarding_before  # other loops untouched
    assert main(["loops", "stop", "trial_nudge", "--reason", "complaints", "--root", paths.root]) == 0
    assert pending(paths, loop="trial_nudge").is_empty()  # the sender sees none of its messages
    assert main(["loops", "stop", "paywall", "--reason", "again", "--root", paths.root]) == 2
    assert "already stopped" in capsys.readouterr().err

    # The nightly run respects the stop, whatever the approval state says.
    day = START + dt.timedelta(days=2)
    run_closed_loop(paths, start=START, days=1, seed=9, config=CONFIG, settings=LoopSettings())
    runs = decisions_frame_for(paths, day)
    assert runs["paywall"] == "stopped" and runs["trial_nudge"] == "stopped"
    assert set(_served(paths, "paywall_variant").values()) == {"control"}
    assert approvals.state(paths, "paywall", "exp-v1") == "approved"  # the approval itself stands

    assert main(["loops", "resume", "paywall", "--reason", "false alarm", "--root", paths.root]) == 0
    assert _served(paths, "paywall_variant") == before  # exactly what was served before the stop
    assert main(["loops", "resume", "trial_nudge", "--root", paths.root]) == 0
    assert set(pending(paths, loop="trial_nudge")["person_id"].to_list()) >= set(consented)

    trail = audit.read_audit(paths, loop="paywall")
    kinds = trail.filter(pl.col("kind").is_in(["stop", "resume"]))
    assert kinds["kind"].to_list() == ["stop", "resume"]
    assert set(kinds["actor"]) == {"oncall@growth"}
    assert json.loads(kinds["evidence"][0])["reason"] == "revenue alert"


def decisions_frame_for(paths, day: dt.date) -> dict[str, str]:
    from growth_loops.loops.runtime import LOOP_RUNS
    from lake import delta_io

    frame = pl.from_arrow(delta_io.read(paths.table("decisions", "loop_runs"), LOOP_RUNS))
    assert isinstance(frame, pl.DataFrame)
    mine = frame.filter(pl.col("day") == day)
    return dict(zip(mine["loop"], mine["status"], strict=True))


def test_without_a_person_no_loop_acts_on_everyone(paths):
    """``make demo``'s situation: nobody approves anything for days."""
    result = run_closed_loop(paths, start=START, days=4, seed=9, config=CONFIG, settings=LoopSettings())
    runs = decisions_frame(result)
    assert set(runs.filter(pl.col("loop").is_in(["trial_nudge", "paywall"]))["status"]) == {"awaiting_approval"}
    assert set(runs.filter(pl.col("loop").is_in(["onboarding", "churn_prevention"]))["status"]) == {"canary"}
    assert "actuated" not in set(runs["status"])
    assert approvals.list_events(paths, kind="auto_approved").is_empty()
    doc = load_features_document(features_document_path(paths))
    assert {r.get("coverage") for r in doc["features"]["onboarding_variant"]["rules"] if "coverage" in r} == {0.1}
    assert set(_served(paths, "paywall_variant").values()) == {"control"}
    # Every canary day says why it is still a canary: guardrails not powered yet.
    log = audit.read_audit(paths, loop="onboarding", kind="action")
    assert set(log["guardrail_verdict"]) == {"insufficient_evidence"}


def _verdict(metric: str, verdict: str) -> GuardrailVerdict:
    return GuardrailVerdict(metric=metric, verdict=verdict, relative_impact=0.0, upper_bound=0.01, lower_bound=-0.01,
                            threshold=-0.05, confidence=0.975, n_control=50_000, n_treatment=50_000,
                            mde=0.01 if verdict == "pass" else 0.2, powered=verdict == "pass", method="msprt-log-ratio",
                            reason=verdict)


def test_an_auto_loop_leaves_its_canary_only_on_powered_passing_guardrails(paths, monkeypatch):
    run_closed_loop(paths, start=START, days=5, seed=9, config=CONFIG, settings=LoopSettings(), decide=False)
    script = {  # what the guardrails say each day, per loop
        START: ("insufficient_evidence", "pass"),
        START + dt.timedelta(days=1): ("pass", "pass"),
        START + dt.timedelta(days=2): ("insufficient_evidence", "pass"),  # breaks the streak
        START + dt.timedelta(days=3): ("pass", "pass"),
        START + dt.timedelta(days=4): ("pass", "pass"),
    }

    def scripted(ctx, loop):
        if not loop.spec.guardrails:
            return []
        first, second = script[ctx.day]
        return [_verdict(loop.spec.guardrails[0].metric, first), _verdict(loop.spec.guardrails[1].metric, second)]

    monkeypatch.setattr(runtime, "guardrail_verdicts", scripted)
    bandit = OnboardingBandit()
    unguarded = ChurnPrevention()
    unguarded.spec = unguarded.spec.__class__(**{**unguarded.spec.__dict__, "guardrails": ()})
    states = {}
    for offset in range(5):
        day = START + dt.timedelta(days=offset)
        runs = run_decisions(paths, day, loops=[bandit, unguarded],
                             now=dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0, 30), tzinfo=dt.UTC))
        states[day] = {r.loop: r.status for r in runs}
    assert approvals.state(paths, "onboarding", bandit.version) == "approved"
    approved = approvals.list_events(paths, loop="onboarding", kind="auto_approved")
    assert approved.height == 1 and approved["at"][0].date() == START + dt.timedelta(days=5)  # after day 5's run
    assert json.loads(approved["evidence"][0])["stable_days"] == 2
    assert [states[START + dt.timedelta(days=d)]["onboarding"] for d in range(5)] == ["canary"] * 5
    # No guardrail, no evidence: the churn loop is a canary however long it runs.
    assert approvals.state(paths, "churn_prevention", unguarded.version) == "canary"
    assert {s["churn_prevention"] for s in states.values()} == {"canary"}
