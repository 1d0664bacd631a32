"""Write-audit-publish in silver, the warehouse and the loops: a failed audit publishes nothing.

Real Delta tables, DuckDB files, dbt and Great Expectations; each failure is forced with deliberately
wrong audit inputs (a tracking plan missing an event, an impossible OEC band, a loop emitting invalid
decisions), never by replacing the validator.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest
from deltalake import DeltaTable

from growth_loops.actuation import Rollback, features_document_path, pending
from growth_loops.loops import approvals, audit
from growth_loops.loops.runtime import DECISIONS, DayContext, LoopSettings, Mode, Outcome, run_decisions
from lake import delta_io
from lake.silver import SilverGate, build_silver, read_state
from orchestration.closed_loop import run_closed_loop
from tests.integration.test_loop_caps import CONFIG, DAY, START, Offers
from tests.integration.test_silver_build import TABLES, ev, land, table


def versions(paths) -> dict[str, int | None]:
    return {n: delta_io.version(paths.table("silver", n)) for n in (*TABLES, "_build_state")}


def _gate(plan, *, without: str | None = None) -> SilverGate:
    return SilverGate(planned_events=tuple(n for n in plan.event_names if n != without))


def test_silver_step_failing_its_suite_commits_nothing_and_a_rerun_after_the_fix_publishes_it(paths, plan, masker):
    land(paths, plan, masker, "2026-11-02-05:00", [ev("page_viewed", "2026-11-02T05:10:00"),
                                                   ev("page_viewed", "2026-11-02T05:20:00", anon="d2")])
    assert build_silver(paths, gate=_gate(plan)).held_hours == {}
    before, state_before = versions(paths), read_state(paths)

    # silver's plan does not know feature_used (a plan out of step with bronze's): the suite must fail
    land(paths, plan, masker, "2026-11-02-07:00", [ev("user_signed_up", "2026-11-02T07:05:00", user="u1"),
                                                   ev("feature_used", "2026-11-02T07:06:00", user="u1")])
    held = build_silver(paths, gate=_gate(plan, without="feature_used"))
    assert list(held.held_hours) == ["2026-11-02-07:00"]
    assert "event_name" in held.held_hours["2026-11-02-07:00"]
    assert not held.gates["gx_silver_events"].passed
    assert versions(paths) == before, "a step that failed its audit committed to silver"
    assert read_state(paths) == state_before, "the build state advanced past a held bronze commit"
    assert held.bronze_version == state_before.bronze_version
    assert table(paths, "events").height == 2  # readers see the previous version: no u1 event, d1 not re-stitched

    fixed = build_silver(paths, gate=_gate(plan))  # the cause removed: the same bronze rows are retried
    assert fixed.held_hours == {} and fixed.published_hours == ["2026-11-02-07:00"]
    events = table(paths, "events")
    assert sorted(events["event_name"].to_list()) == ["feature_used", "page_viewed", "page_viewed", "user_signed_up"]
    assert read_state(paths).bronze_version == DeltaTable(paths.bronze_events).version()


def test_silver_publishes_the_passing_hours_of_a_step_and_holds_the_failing_one(paths, plan, masker):
    land(paths, plan, masker, "2026-11-02-05:00", [ev("page_viewed", "2026-11-02T05:10:00")])
    build_silver(paths, gate=_gate(plan))
    state_before = read_state(paths)
    land(paths, plan, masker, "2026-11-02-06:00", [ev("page_viewed", "2026-11-02T06:10:00", anon="d3")])
    land(paths, plan, masker, "2026-11-02-07:00", [ev("feature_used", "2026-11-02T07:06:00", user="u9", anon="d9")])

    result = build_silver(paths, gate=_gate(plan, without="feature_used"))
    assert list(result.held_hours) == ["2026-11-02-07:00"]
    assert result.published_hours == ["2026-11-02-06:00"]
    events = table(paths, "events")
    assert sorted(events["_landing_partition"].unique().to_list()) == ["2026-11-02-05:00", "2026-11-02-06:00"]
    state = read_state(paths)
    assert state.bronze_version == state_before.bronze_version  # held rows are retried by the next build
    assert build_silver(paths, gate=_gate(plan)).held_hours == {}  # ... no rollback of what was published
    events = table(paths, "events")
    assert events["event_id"].is_unique().all()
    assert events.filter(pl.col("anonymous_id") == "d9")["person_id"].to_list() == ["u9"]
    assert events.height == 3


# -- loops ---------------------------------------------------------------------------------------

class _BrokenOffers(Offers):
    """The offers loop with a bug: it decides twice for one person (two decisions, one decision id); it
    also turns a banner flag on, so a published day would change the flags document."""

    def decide(self, ctx: DayContext, mode: Mode) -> Outcome:
        out = super().decide(ctx, mode)
        first = out.decisions[0]
        out.decisions.append({**first, "action": "control" if first["action"] == "offer" else "offer"})
        out.flag = Rollback(key="offer_banner", default="on")
        return out


@pytest.mark.slow
def test_failing_loop_audit_publishes_neither_flags_nor_outbox_nor_decisions(paths):
    run_closed_loop(paths, start=START, days=3, seed=9, config=CONFIG, settings=LoopSettings(), decide=False)
    approvals.request(paths, "offers", "v1", evidence={}, now=_now(START))
    approvals.approve(paths, "offers", "v1", actor="maria@growth", reason="reviewed", now=_now(START))
    before_day = DAY - dt.timedelta(days=1)
    (good,) = run_decisions(paths, before_day, loops=[Offers()], now=_now(before_day))
    assert good.published and good.audit is not None and good.audit.passed

    flags = Path(features_document_path(paths))
    history = Path(features_document_path(paths, f"features-{DAY.isoformat()}"))
    history_before = history.read_bytes() if history.exists() else None  # the day's copy, if any
    snapshot = (flags.read_bytes(), delta_io.version(paths.loop_decisions("offers")), pending(paths, loop="offers"),
                audit.read_audit(paths, loop="offers").height)

    (broken,) = run_decisions(paths, DAY, loops=[_BrokenOffers()], now=_now(DAY))
    assert broken.status == "actuated" and not broken.published
    assert broken.audit is not None and not broken.audit.passed and "decision_id" in (broken.audit.summary or "")
    after = (flags.read_bytes(), delta_io.version(paths.loop_decisions("offers")), pending(paths, loop="offers"),
             audit.read_audit(paths, loop="offers").height)
    history_after = history.read_bytes() if history.exists() else None
    assert after[0] == snapshot[0] and history_after == history_before, "the flags document changed"
    assert after[1] == snapshot[1], "the decisions table changed"
    assert after[2].equals(snapshot[2]), "the outbox changed"
    assert after[3] == snapshot[3], "the audit log changed"

    (fixed,) = run_decisions(paths, DAY, loops=[Offers()], now=_now(DAY))  # the bug fixed: the day publishes
    assert fixed.published
    decided = pl.from_arrow(delta_io.read(paths.loop_decisions("offers"), DECISIONS, partitions=[("day", "=", DAY)]))
    assert decided.height == len(fixed.outcome.decisions) > 0
    assert pending(paths, loop="offers").height > snapshot[2].height


def _now(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0, 30), tzinfo=dt.UTC)
