"""Frequency and budget caps on automated actions, applied before anything is actuated."""

from __future__ import annotations

import datetime as dt

import pytest

from growth_loops.actuation import OutboxMessage
from growth_loops.loops.caps import apply_caps
from growth_loops.loops.spec import Budget

DAY = dt.date(2026, 3, 5)


def _day(n_offer: int, n_control: int, *, loop: str = "churn_prevention"):
    decisions = ([{"person_id": f"o{i:03d}", "action": "retention_offer", "propensity": 0.8} for i in range(n_offer)]
                 + [{"person_id": f"c{i:03d}", "action": "control", "propensity": 0.2} for i in range(n_control)])
    messages = [OutboxMessage(loop=loop, decision_id=f"x:{d['person_id']}", decision_day=DAY,
                              person_id=d["person_id"], template="retention_offer")
                for d in decisions if d["action"] == "retention_offer"]
    return decisions, messages


def _actuated(result) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for d in result.decisions:
        if d.get("actuated", True):
            out.setdefault(d["action"], []).append(d["person_id"])
    return out


@pytest.mark.parametrize(
    ("last_week", "cap", "dropped"),
    [
        ({}, 2, set()),  # nobody has had a message: nothing binds
        ({"o001": 1, "c002": 1}, 2, set()),  # below the cap
        ({"o001": 2, "c002": 5}, 2, {"o001", "c002"}),  # at or above: the whole unit leaves, control too
        ({"o001": 2, "c002": 5}, None, set()),  # no cap
        ({"o001": 1}, 1, {"o001"}),
    ],
)
def test_the_frequency_cap_drops_people_who_had_enough_messages_this_week(last_week, cap, dropped):
    decisions, messages = _day(4, 4)
    result = apply_caps(decisions, messages, loop="churn_prevention", messages_last_week=last_week,
                        per_person_per_week=cap, budget=None)
    capped = {d["person_id"] for d in result.decisions if d.get("cap") == "frequency"}
    assert capped == dropped
    assert all(d["actuated"] is False for d in result.decisions if d["person_id"] in dropped)
    assert {m.person_id for m in result.messages} == {m.person_id for m in messages} - dropped
    if dropped:
        assert result.bindings == [{"cap": "frequency", "limit": cap, "per": "person and 7 days", "wanted": 8,
                                    "kept": 8 - len(dropped), "dropped": len(dropped)}]
    else:
        assert result.bindings == []
    # The counts carried to the next loop of the run include the messages kept here.
    for m in result.messages:
        assert result.counts[m.person_id] == last_week.get(m.person_id, 0) + 1


def test_the_frequency_cap_does_not_touch_a_loop_that_sends_nothing():
    decisions = [{"person_id": "p1", "action": "guided"}, {"person_id": "p2", "action": "control"}]
    result = apply_caps(decisions, [], loop="onboarding", messages_last_week={"p1": 9, "p2": 9},
                        per_person_per_week=2, budget=None)
    assert result.bindings == [] and all(d.get("actuated", True) for d in result.decisions)


@pytest.mark.parametrize(
    ("n_offer", "n_control", "limit", "kept_offer", "kept_control"),
    [
        (40, 10, 10, 10, 2),  # a quarter of the offers fit: a quarter of each arm is kept
        (40, 10, 40, 40, 10),  # the budget is exactly met: nothing binds
        (40, 10, 100, 40, 10),
        (8, 8, 2, 2, 2),
    ],
)
def test_the_budget_cap_keeps_the_same_share_of_every_arm(n_offer, n_control, limit, kept_offer, kept_control):
    decisions, messages = _day(n_offer, n_control)
    budget = Budget(action="retention_offer", max_per_day=limit)
    result = apply_caps(decisions, messages, loop="churn_prevention", messages_last_week={},
                        per_person_per_week=None, budget=budget)
    kept = _actuated(result)
    assert len(kept.get("retention_offer", [])) == kept_offer
    assert len(kept.get("control", [])) == kept_control
    assert len(result.messages) == kept_offer  # no discount beyond the budget is sent
    assert {m.person_id for m in result.messages} == set(kept.get("retention_offer", []))
    binds = kept_offer < n_offer
    assert [b["cap"] for b in result.bindings] == (["budget"] if binds else [])
    if binds:
        assert result.bindings[0] == {"cap": "budget", "action": "retention_offer", "limit": limit, "per": "day",
                                      "wanted": n_offer, "kept": limit,
                                      "dropped": n_offer + n_control - kept_offer - kept_control}
        assert {d["cap"] for d in result.decisions if not d.get("actuated", True)} == {"budget"}


def test_which_units_the_budget_keeps_is_deterministic_and_not_the_input_order():
    decisions, messages = _day(30, 30)
    budget = Budget(action="retention_offer", max_per_day=6)
    first = apply_caps(decisions, messages, loop="churn_prevention", messages_last_week={}, per_person_per_week=None,
                       budget=budget)
    again = apply_caps(decisions[::-1], messages[::-1], loop="churn_prevention", messages_last_week={},
                       per_person_per_week=None, budget=budget)
    assert sorted(_actuated(first)["retention_offer"]) == sorted(_actuated(again)["retention_offer"])
    # Not simply the first six people of the list.
    assert sorted(_actuated(first)["retention_offer"]) != [f"o{i:03d}" for i in range(6)]


def test_both_caps_together_the_budget_counts_only_what_the_frequency_cap_left():
    decisions, messages = _day(12, 4)
    last_week = {f"o{i:03d}": 2 for i in range(6)}  # half the offers already had their two messages
    result = apply_caps(decisions, messages, loop="churn_prevention", messages_last_week=last_week,
                        per_person_per_week=2, budget=Budget(action="retention_offer", max_per_day=3))
    assert [b["cap"] for b in result.bindings] == ["frequency", "budget"]
    assert result.bindings[1]["wanted"] == 6
    kept = _actuated(result)
    assert len(kept["retention_offer"]) == 3 and len(kept["control"]) == 2
    assert not set(kept["retention_offer"]) & set(last_week)


def test_loop_level_decisions_are_never_capped():
    decisions = [{"person_id": None, "action": "discount_popup", "propensity": 0.5}]
    result = apply_caps(decisions, [], loop="paywall", messages_last_week={}, per_person_per_week=1,
                        budget=Budget(action="discount_popup", max_per_day=1))
    assert result.decisions == decisions and result.bindings == []
