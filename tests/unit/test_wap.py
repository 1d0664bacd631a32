"""The stage -> audit -> publish helper, and how silver's verdicts become per-hour check results."""

from __future__ import annotations

from lake.silver import SilverResult
from lake.wap import CheckOutcome, publish_if_audited
from orchestration.silver.assets import SILVER_EVENTS_KEY, SILVER_IDENTITY_KEY, SILVER_SESSIONS_KEY, _checks


def test_publish_runs_only_when_every_blocking_check_passed():
    published: list[str] = []
    ok = publish_if_audited(stage=lambda: "rows", audit=lambda s: [CheckOutcome("a", True),
                                                                    CheckOutcome("warn", False, blocking=False)],
                            publish=lambda s: published.append(s) or len(published))
    assert ok.published and ok.passed and ok.result == 1 and published == ["rows"]
    assert [c.name for c in ok.failed] == ["warn"]

    held = publish_if_audited(stage=lambda: "bad rows", audit=lambda s: [CheckOutcome("a", False, "3 nulls")],
                              publish=lambda s: published.append(s))
    assert not held.published and held.result is None and published == ["rows"]
    assert held.summary() == "held: a: 3 nulls" and held.check("a") is not None


def test_silver_checks_hold_only_the_failing_hour_and_the_hours_not_built_after_it():
    result = SilverResult(
        held_hours={"2026-11-02-07:00": "silver_events: event_name not in the plan"},
        published_hours=["2026-11-02-06:00"],
        gates={"gx_silver_events": CheckOutcome("gx_silver_events", False, "hour 07 failed"),
               "gx_silver_sessions": CheckOutcome("gx_silver_sessions", True, "silver_sessions: passed")})
    keys = ["2026-11-02-06:00", "2026-11-02-07:00", "2026-11-02-08:00"]
    verdicts = {(c.asset_key, c.partition): (c.passed, c.description) for c in _checks(result, keys)}
    assert verdicts[(SILVER_EVENTS_KEY, keys[0])][0]
    assert verdicts[(SILVER_EVENTS_KEY, keys[1])] == (
        False, "held, nothing of this hour published: silver_events: event_name not in the plan")
    passed, why = verdicts[(SILVER_EVENTS_KEY, keys[2])]
    assert not passed and "stopped at the held landing hour(s) 2026-11-02-07:00" in (why or "")
    assert all(verdicts[(SILVER_SESSIONS_KEY, k)][0] for k in keys)
    assert all(verdicts[(SILVER_IDENTITY_KEY, k)][0] for k in keys)
