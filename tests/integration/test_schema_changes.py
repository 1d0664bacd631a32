"""Issue 19, point 3: schema changes of events' properties are reported per plan version.

Two simulated days are ingested for real (bronze and quarantine Delta tables): the first against the
shipped plan, the second against a minor version of it, with a client release that sends
``feature_used.duration_s`` as a string, stopped sending ``page_viewed.title`` and started sending an
unplanned ``page_viewed.beta_banner``. The report names each change under the version it arrived with,
with line counts taken independently from the landing files, and reports none under the first version.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from lake.contracts import load_plan
from lake.contracts.changes import schema_changes
from lake.ingest import ingest_range, list_landing_partitions
from lake.pii import PiiMasker, pii_key_from_env
from orchestration.cli import main
from simulation import simulate
from tests.helpers import rewrite_landing_hour
from tests.integration.test_silver_build import passing_gate

pytestmark = pytest.mark.slow


def _release(paths, keys: list[str]) -> dict[str, int]:
    """Rewrite the hours' landing files as the broken release sends them; return what it changed."""
    n = {"retyped": 0, "stripped": 0, "new": 0, "feature_used": 0, "page_viewed": 0}

    def change(e: dict) -> None:
        props = e.get("properties")
        name = e.get("event_name") or e.get("event")  # canonical | Segment
        if isinstance(props, dict) and name == "feature_used":
            n["feature_used"] += 1
            if isinstance(props.get("duration_s"), int | float):
                props["duration_s"] = str(props["duration_s"])
                n["retyped"] += 1
        if isinstance(props, dict) and name == "page_viewed":
            n["page_viewed"] += 1
            n["stripped"] += props.pop("title", None) is not None
            props["beta_banner"] = "shown"
            n["new"] += 1

    for key in keys:
        rewrite_landing_hour(paths, key, change)
    return n


def test_a_client_release_is_reported_under_the_plan_version_it_arrived_with(paths, capsys):
    simulate(paths.root, users=300, days=2, seed=8, start=dt.date(2026, 4, 6), fault_rate=0.0,
             analytics_consent_rate=1.0)  # every landed line is stored: the counts below are exact
    keys = list_landing_partitions(paths)
    day1 = [k for k in keys if k.startswith("2026-04-06")]
    day2 = [k for k in keys if not k.startswith("2026-04-06")]
    assert day1 and day2
    changed = _release(paths, day2)
    assert min(changed.values()) > 0, changed

    shipped = load_plan(None)
    major, minor, _patch = shipped.version.split(".")
    next_plan = dataclasses.replace(shipped, version=f"{major}.{int(minor) + 1}.0")
    masker = PiiMasker(pii_key_from_env(paths))
    ingest_range(paths, day1, plan=shipped, masker=masker, auditor=passing_gate)
    ingest_range(paths, day2, plan=next_plan, masker=masker, auditor=passing_gate)

    report = schema_changes(paths, keys, plan=next_plan,
                            plan_for_version=lambda v: shipped if v == shipped.version else None)

    assert list(report.lines_by_version) == [shipped.version, next_plan.version]
    first = [c for c in report.changes if c.plan_version == shipped.version]
    assert first == [], [str(c) for c in first]
    second = {(c.kind, f"{c.event}.{c.prop}"): c for c in report.changes if c.plan_version == next_plan.version}
    assert set(second) == {("retyped", "feature_used.duration_s"), ("missing", "page_viewed.title"),
                           ("new", "page_viewed.beta_banner")}, [str(c) for c in report.changes]
    retyped = second["retyped", "feature_used.duration_s"]
    assert retyped.lines == changed["retyped"] and retyped.event_lines == changed["feature_used"]
    assert "number expected, sent as string" in retyped.detail and retyped.first_hour in day2
    assert second["new", "page_viewed.beta_banner"].lines == changed["new"] == changed["page_viewed"]
    assert "under plan " + shipped.version in second["missing", "page_viewed.title"].detail

    # Below the minimum share a change is counted, not listed (stray faulty lines); "missing" always shows.
    strict = schema_changes(paths, keys, plan=next_plan, min_share=1.01,
                            plan_for_version=lambda v: shipped if v == shipped.version else None)
    assert [(c.kind, c.prop) for c in strict.changes] == [("missing", "title")]
    assert strict.not_listed == {next_plan.version: 2}

    # The CLI prints the same report (the plan's git history supplies the older version when it can).
    assert main(["plan", "changes", "--days", "7"]) == 0
    out = capsys.readouterr().out
    assert f"plan {shipped.version}:" in out and "feature_used.duration_s" in out
