"""Write-audit-publish in silver, the warehouse and the loops: a failed audit publishes nothing.

Real Delta tables, DuckDB files, dbt and Great Expectations; each failure is forced with deliberately
wrong audit inputs (a tracking plan missing an event, an impossible OEC band, a loop emitting invalid
decisions), never by replacing the validator.
"""

from __future__ import annotations

import polars as pl
from deltalake import DeltaTable

from lake import delta_io
from lake.silver import SilverGate, build_silver, read_state
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
