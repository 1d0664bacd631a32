"""No decision is actuated on data whose gate failed; re-running a day sends nothing twice."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from growth_loops.actuation import document_hash, features_document_path, load_features_document
from growth_loops.actuation.messages import MESSAGE_OUTBOX, outbox_path
from growth_loops.features import FeatureStore
from growth_loops.loops import approvals, audit
from growth_loops.loops.runtime import LoopSettings, run_decisions
from lake import delta_io
from orchestration.closed_loop import run_closed_loop
from simulation.closed_loop import ClosedLoopConfig
from tests.feature_helpers import at, silver_event, write_events

pytestmark = pytest.mark.slow

START = dt.date(2026, 3, 2)


def test_a_failed_feature_gate_stops_every_loop_that_reads_it(paths):
    def approve(day, runs):
        for run in runs:
            if run.status == "awaiting_approval":
                approvals.approve(paths, run.loop, run.policy_version, actor="maria@growth")

    cfg = ClosedLoopConfig(arrivals_per_day=300, trial_days=3, extra_sessions_per_day=0.4, actions_per_session=1.0)
    run_closed_loop(paths, start=START, days=4, seed=9, config=cfg, settings=LoopSettings(), on_day=approve)
    doc_before = load_features_document(features_document_path(paths))
    outbox_before = delta_io.read(outbox_path(paths), MESSAGE_OUTBOX).num_rows

    # Day 5 brings a refund booked as a negative payment: user_features fails its suite and is held.
    bad_day = START + dt.timedelta(days=4)
    person = FeatureStore(paths).history("user_features")["person_id"][0]
    write_events(paths, [silver_event(person, "payment_succeeded", at(bad_day), revenue=-500.0, currency="USD"),
                         silver_event(person, "page_viewed", at(bad_day))])
    held = {m.view: m.status for m in FeatureStore(paths).materialize(bad_day)}
    assert held["user_features"] == "held"

    runs = {r.loop: r for r in run_decisions(paths, bad_day, now=at(bad_day + dt.timedelta(days=1), 0, 30))}

    assert {name: r.status for name, r in runs.items()} == dict.fromkeys(runs, "skipped")
    assert all("user_features" in r.note and "held" in r.note for r in runs.values())
    # Nothing new reaches the product: the flags stay as they were, no message is queued.
    assert document_hash(load_features_document(features_document_path(paths))) == document_hash(doc_before)
    assert delta_io.read(outbox_path(paths), MESSAGE_OUTBOX).num_rows == outbox_before
    skipped = audit.read_audit(paths, kind="skipped").filter(pl.col("decision_day") == bad_day)
    assert sorted(skipped["loop"]) == sorted(runs) and set(skipped["guardrail_verdict"]) == {"n/a"}
    assert audit.read_audit(paths, kind="action").filter(pl.col("decision_day") == bad_day).is_empty()


def test_the_nightly_loops_job_materializes_each_loop_with_its_audit_check(paths):
    import dagster as dg

    from orchestration.definitions import build_definitions
    from orchestration.resources import LakeResource

    cfg = ClosedLoopConfig(arrivals_per_day=200, trial_days=3, extra_sessions_per_day=0.4, actions_per_session=1.0)
    run_closed_loop(paths, start=START, days=1, seed=4, config=cfg)
    defs = build_definitions(lake=LakeResource(root=paths.root))
    res = defs.resolve_job_def("nightly_loops").execute_in_process(
        partition_key=START.isoformat(), instance=dg.DagsterInstance.ephemeral())
    assert res.success
    statuses = {e.asset_key.path[1]: e.materialization.metadata["status"].value
                for e in res.get_asset_materialization_events()}
    # Two human-approved loops wait for a person; the auto-approved ones run as canaries.
    assert statuses == {"onboarding": "canary", "trial_nudge": "awaiting_approval",
                        "paywall": "awaiting_approval", "churn_prevention": "canary"}
    checks = res.get_asset_check_evaluations()
    assert {c.check_name for c in checks} == {f"audited_{name}" for name in statuses}
    assert all(c.passed for c in checks)
