"""The loop lifecycle's state machine: every (state, event) pair, as a table."""

from __future__ import annotations

import pytest

from growth_loops.loops import LoopError
from growth_loops.loops.lifecycle import Event, Lifecycle, fold, stable_streak, transition

START = Lifecycle("paywall", "exp-v1")


def at(state, stopped=False) -> Lifecycle:
    return Lifecycle("paywall", "exp-v1", state, stopped)


PASS = {"verdict": "pass"}
WEAK = {"verdict": "insufficient_evidence"}


@pytest.mark.parametrize(
    ("state", "event", "after"),
    [
        (None, Event("requested"), "pending"),
        (None, Event("canary_started"), "canary"),
        ("pending", Event("approved"), "approved"),
        ("canary", Event("approved"), "approved"),  # a person may approve a canary early
        ("canary", Event("auto_approved", stable_days=2, required_days=2), "approved"),
        ("canary", Event("auto_approved", stable_days=5, required_days=2), "approved"),
        ("pending", Event("rejected"), "rejected"),
        ("canary", Event("rejected"), "rejected"),
        ("pending", Event("rolled_back"), "rolled_back"),
        ("canary", Event("rolled_back"), "rolled_back"),
        ("approved", Event("rolled_back"), "rolled_back"),
    ],
)
def test_allowed_transitions(state, event, after):
    assert transition(at(state), event).state == after


@pytest.mark.parametrize(
    ("state", "event", "why"),
    [
        (None, Event("approved"), "no approval was requested"),
        (None, Event("rejected"), "no approval was requested"),
        (None, Event("auto_approved", stable_days=3, required_days=2), "no approval was requested"),
        ("pending", Event("requested"), "already pending"),
        ("canary", Event("canary_started"), "already canary"),
        ("canary", Event("auto_approved", stable_days=1, required_days=2), "1 of 2 stable"),
        ("canary", Event("auto_approved", stable_days=0, required_days=0), "0 of 0 stable"),  # no guardrail, no exit
        ("pending", Event("auto_approved", stable_days=9, required_days=2), "waits for a person"),
        ("approved", Event("approved"), "already approved"),
        ("approved", Event("rejected"), "loops stop paywall"),  # a live loop is stopped, not rejected
        ("rejected", Event("approved"), "already rejected"),
        ("rejected", Event("rolled_back"), "already rejected"),
        ("rolled_back", Event("approved"), "already rolled back"),
        ("rolled_back", Event("requested"), "already rolled back"),
        ("approved", Event("vanished"), "unknown"),
    ],
)
def test_refused_transitions_say_why(state, event, why):
    with pytest.raises(LoopError, match=why):
        transition(at(state), event)


@pytest.mark.parametrize(
    ("state", "stopped", "mode"),
    [(None, False, "control"), ("pending", False, "control"), ("canary", False, "canary"),
     ("approved", False, "full"), ("rejected", False, "control"), ("rolled_back", False, "control"),
     ("approved", True, "stopped"), ("canary", True, "stopped"), ("pending", True, "stopped")],
)
def test_what_each_state_actuates(state, stopped, mode):
    assert at(state, stopped).mode == mode


@pytest.mark.parametrize("state", [None, "pending", "canary", "approved", "rejected", "rolled_back"])
def test_the_kill_switch_works_whatever_the_version_state_and_resume_restores_it(state):
    stopped = transition(at(state), Event("stopped"))
    assert stopped.mode == "stopped" and stopped.state == state
    with pytest.raises(LoopError, match="already stopped"):
        transition(stopped, Event("stopped"))
    resumed = transition(stopped, Event("resumed"))
    assert resumed == at(state)
    with pytest.raises(LoopError, match="not stopped"):
        transition(resumed, Event("resumed"))


def test_a_guardrail_breach_while_stopped_still_rolls_back():
    assert transition(at("approved", stopped=True), Event("rolled_back")) == at("rolled_back", stopped=True)


def test_fold_replays_events_and_skips_what_the_machine_refuses():
    events = [Event("canary_started"), Event("auto_approved", stable_days=1, required_days=2), Event("stopped"),
              Event("approved"), Event("resumed")]
    assert fold("paywall", "exp-v1", events) == at("approved")


@pytest.mark.parametrize(
    ("days", "streak"),
    [
        ([], 0),
        ([[PASS]], 1),
        ([[PASS], [PASS, PASS]], 2),
        ([[PASS], [WEAK], [PASS]], 1),  # an underpowered day breaks the streak
        ([[PASS], [PASS], []], 0),  # a day without any guardrail verdict is not evidence
        ([[PASS], [PASS, WEAK]], 0),  # every guardrail of the day must pass
        (['[{"verdict": "pass"}]', '[{"verdict": "pass"}]'], 2),  # as stored in loop_runs
        ([[{"verdict": "rollback"}], [PASS]], 1),
    ],
)
def test_stable_streak_counts_only_powered_passing_days(days, streak):
    assert stable_streak(days) == streak


# -- every loop brings its evidence: OEC guardrails declared in the spec -------------------------


def test_every_loop_declares_oec_guardrails_on_metrics_of_the_metric_layer():
    from growth_loops.loops.catalog import default_loops
    from growth_loops.metrics import load_metric_layer

    layer = load_metric_layer()
    for loop in default_loops():
        metrics = {g.metric for g in loop.spec.guardrails}
        assert {"revenue_per_active_user", "retention_d7"} <= metrics, loop.spec.name
        for guardrail in loop.spec.guardrails:
            layer.metric(guardrail.metric)  # a metric the marts define too, or MetricError
