"""Frequency and budget caps are enforced before actuation, on real Delta tables, and audited when they bind."""

from __future__ import annotations

import datetime as dt
import json

import polars as pl
import pytest

from growth_loops.actuation import OutboxMessage, enqueue, pending
from growth_loops.loops import approvals, audit
from growth_loops.loops.runtime import DECISIONS, DayContext, Loop, LoopSettings, Mode, Outcome, run_decisions
from growth_loops.loops.spec import ApprovalPolicy, Budget, LoopSpec
from lake import delta_io
from orchestration.closed_loop import run_closed_loop
from simulation.closed_loop import ClosedLoopConfig

pytestmark = pytest.mark.slow

START = dt.date(2026, 3, 2)
CONFIG = ClosedLoopConfig(arrivals_per_day=300, trial_days=3, extra_sessions_per_day=0.4, actions_per_session=1.0)
DAY = START + dt.timedelta(days=2)


class Offers(Loop):
    """A discount email to half of 40 consented people a day, at most 5 discounts a day."""

    spec = LoopSpec(name="offers", description="discount emails", owner="test",
                    inputs=("user_marketing.emails_opened_28d",), policy="experiment", actuation="message",
                    target="offer", variants=("control", "offer"),
                    control="control", feedback_metric="converted", approval=ApprovalPolicy(mode="human"),
                    budget=Budget(action="offer", max_per_day=5))
    version = "v1"

    def decide(self, ctx: DayContext, mode: Mode) -> Outcome:
        people = sorted(ctx.features("user_marketing").filter(pl.col("emails_opened_28d").is_not_null())["person_id"])
        decisions, messages = [], []
        for i, person in enumerate(people[:40]):
            action = "offer" if i % 2 == 0 else "control"
            decisions.append({"person_id": person, "action": action, "propensity": 0.5})
            if action == "offer":
                messages.append(OutboxMessage(loop="offers", decision_id=f"offers:{person}", decision_day=ctx.day,
                                              person_id=person, template="offer"))
        return Outcome(decisions=decisions, messages=messages)


def test_caps_bind_before_actuation_and_every_binding_is_audited(paths):
    run_closed_loop(paths, start=START, days=3, seed=9, config=CONFIG, settings=LoopSettings(), decide=False)
    now = dt.datetime.combine(DAY + dt.timedelta(days=1), dt.time(0, 30), tzinfo=dt.UTC)
    loop = Offers()
    approvals.request(paths, "offers", "v1", evidence={}, now=now - dt.timedelta(hours=2))
    approvals.approve(paths, "offers", "v1", actor="maria@growth", reason="reviewed", now=now - dt.timedelta(hours=1))
    wanted = loop.decide(DayContext(paths, DAY, settings=LoopSettings(), now=now), "full")
    offered = [d["person_id"] for d in wanted.decisions if d["action"] == "offer"]
    assert len(offered) == 20
    # Three of them already got two emails from another loop this week (the default cap is 2 a week).
    tired = offered[:3]
    enqueue(paths, [OutboxMessage(loop="trial_nudge", decision_id=f"nudge:{p}", person_id=p, template="trial_nudge",
                                  decision_day=DAY - dt.timedelta(days=k)) for p in tired for k in (1, 2)],
            consented=tired)

    (run,) = run_decisions(paths, DAY, loops=[loop], now=now)
    assert run.status == "actuated"

    decided = pl.from_arrow(delta_io.read(paths.loop_decisions("offers"), DECISIONS))
    assert isinstance(decided, pl.DataFrame)
    acted = decided.filter(pl.col("actuated"))
    # The frequency cap first: the three tired people leave; then the budget: 5 of the 17 offers,
    # and the same share (5/17) of the 20 controls.
    assert not set(tired) & set(acted["person_id"])
    assert acted.filter(pl.col("action") == "offer").height == 5
    assert acted.filter(pl.col("action") == "control").height == int(20 * 5 / 17)
    queued = pending(paths, loop="offers")
    assert sorted(queued["person_id"]) == sorted(acted.filter(pl.col("action") == "offer")["person_id"])

    caps = audit.read_audit(paths, loop="offers", kind="cap")
    bindings = {json.loads(e)["cap"]: json.loads(e) for e in caps["evidence"]}
    assert bindings["frequency"] == {"cap": "frequency", "limit": 2, "per": "person and 7 days", "wanted": 40,
                                     "kept": 37, "dropped": 3}
    assert bindings["budget"]["wanted"] == 17 and bindings["budget"]["kept"] == 5
    actions = audit.read_audit(paths, loop="offers", kind="action")
    capped = {r["person_id"]: json.loads(r["evidence"]).get("cap") for r in actions.iter_rows(named=True)}
    assert {capped[p] for p in tired} == {"frequency"}
    assert sum(c == "budget" for c in capped.values()) == 40 - 3 - acted.height

    # Re-running the night (a retry) caps the same people and queues or audits nothing twice.
    run_decisions(paths, DAY, loops=[loop], now=now)
    assert pending(paths, loop="offers").height == queued.height
    assert audit.read_audit(paths, loop="offers", kind="cap").height == 2
