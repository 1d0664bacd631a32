"""The loop closes: decisions change what simulated users do, and every claim is checked against truth.

One run of 25 simulated days (1,500 visitors a day, 30% global holdout) through the whole chain —
simulator → landing → bronze → silver → features → loops → outbox → simulator — then the
acceptance checks of the growth loops, each against the simulator's known effects.
"""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import polars as pl
import pytest

from growth_loops.actuation import document_hash, features_document_path, load_features_document
from growth_loops.actuation.messages import MESSAGE_OUTBOX, outbox_path
from growth_loops.experiments import in_holdout_many, welch
from growth_loops.loops import approvals, audit
from growth_loops.loops.data import read_events
from growth_loops.loops.runtime import DECISIONS, EXPERIMENT_RESULTS, LOOP_RUNS, LoopSettings, run_decisions
from lake import delta_io
from orchestration.closed_loop import decisions_frame, run_closed_loop
from simulation.closed_loop import ClosedLoopConfig, PaywallEffect, read_truth

pytestmark = pytest.mark.slow

START, DAYS = dt.date(2026, 3, 2), 25
LAST = START + dt.timedelta(days=DAYS - 1)
HARMFUL = PaywallEffect(conversion_multiplier=1.05, price_factor=0.5)  # -47.5% revenue per exposed person
# On mobile the guided variant loses its edge and the checklist wins: only a contextual policy finds both.
# A stickier, less daily product with an easier onboarding than the default (2% of people a day go dormant,
# not 7%; active on about a third of days, not 70%; 40% complete onboarding under control, not 10%, and
# guided helps more): the bandit's arms then differ by 7-21 points, enough on tablets too (the fewest
# people), and the activity the loops add (completed onboarding raises it, up to a cap of 97%) is
# powered at 1,500 visitors a day within the 25 days.
CONFIG = ClosedLoopConfig(arrivals_per_day=1500, trial_days=7, extra_sessions_per_day=0.4, actions_per_session=1.0,
                          dormancy_daily_base=0.02, active_daily_base=0.35, onboarding_base=0.82,
                          onboarding_step_lift={"control": 0.0, "guided": 0.09, "checklist": 0.03},
                          paywall_variants={"control": PaywallEffect(1.0, 1.0), "discount_popup": HARMFUL},
                          onboarding_device_effect={"mobile": {"guided": -0.12, "checklist": 0.08}})
SETTINGS = LoopSettings(holdout_share=0.3)


def _table(uri: str, schema) -> pl.DataFrame:
    frame = pl.from_arrow(delta_io.read(uri, schema))
    assert isinstance(frame, pl.DataFrame)
    return frame


def test_the_loops_close_and_every_claim_holds_against_the_simulator(paths):
    approved: list[tuple[str, str]] = []

    def approve_when_asked(day, runs):  # a person reviews pending versions each morning
        for run in runs:
            # The auto loops' canaries cannot approve themselves here: at 1,500 visitors a day their
            # guardrails (d7 retention, revenue per active user) are not powered within 25 days. A person
            # lets them act on everyone after two canary days, so the bandit's claims can be checked.
            canary_reviewed = run.status == "canary" and day >= START + dt.timedelta(days=1)
            if run.status == "awaiting_approval" or canary_reviewed:
                version = run.policy_version.split("+")[0]  # a promoted policy runs under its version
                approvals.approve(paths, run.loop, version, actor="maria@growth", reason="plan reviewed")
                approved.append((run.loop, version))

    result = run_closed_loop(paths, start=START, days=DAYS, seed=5, config=CONFIG, settings=SETTINGS,
                             on_day=approve_when_asked)
    runs = decisions_frame(result)
    truth = read_truth(paths.root)
    outbox = _table(outbox_path(paths), MESSAGE_OUTBOX)

    # -- human oversight: nothing needing approval acted before it was approved ------------------
    assert sorted(approved) == [("churn_prevention", "risk-v1"), ("onboarding", "lints-v1"), ("paywall", "exp-v1"),
                                ("trial_nudge", "exp-v1")]
    assert approvals.list_events(paths, kind="auto_approved").is_empty()  # no loop approved itself without evidence
    first = runs.filter(pl.col("day") == START)
    assert dict(zip(first["loop"], first["status"], strict=True)) == {
        "onboarding": "canary", "trial_nudge": "awaiting_approval", "paywall": "awaiting_approval",
        "churn_prevention": "canary"}
    assert outbox.filter(pl.col("decision_day") == START).is_empty()
    assert truth.filter((pl.col("day") <= START + dt.timedelta(days=1))
                        & (pl.col("paywall_variant") == "discount_popup")
                        & pl.col("paywall_exposed_today")).is_empty()

    # -- trial nudge: the experiment's 95% interval covers the simulator's true lift -------------
    results = _table(paths.table("experiments", "results"), EXPERIMENT_RESULTS)
    nudge = results.filter((pl.col("day") == LAST) & (pl.col("experiment") == "trial-nudge-exp-v1")).row(0, named=True)
    record = json.loads(nudge["record"])
    units = _table(paths.loop_decisions("trial_nudge"), DECISIONS).filter(
        pl.col("actuated") & (pl.col("day") <= LAST - dt.timedelta(days=7)))
    assert units.height == nudge["n_control"] + nudge["n_treatment"] > 600
    # True effect per unit: +0.08 conversion probability, scaled by the paywall variant it met.
    variant = truth.filter(pl.col("paywall_variant").is_not_null()).group_by("user_id").agg(
        pl.col("paywall_variant").last())
    met = units.join(variant, left_on="person_id", right_on="user_id", how="left")["paywall_variant"]
    met = met.fill_null("control")
    multiplier = np.array([CONFIG.paywall_variants[v].conversion_multiplier for v in met.to_list()])
    true_lift = CONFIG.trial_nudge_lift * multiplier.mean()
    assert record["abs_ci_low"] <= true_lift <= record["abs_ci_high"], (record, true_lift)
    assert record["abs_ci_low"] > 0 and not nudge["srm_flagged"]
    assert record["cuped_estimate"] is not None

    # -- paywall: the harmful variant is rolled back by its guardrail within the window ----------
    paywall = runs.filter(pl.col("loop") == "paywall").sort("day")
    rolled = paywall.filter(pl.col("status") == "rolled_back")
    exposed = truth.filter(pl.col("paywall_exposed_today") & (pl.col("paywall_variant") == "discount_popup"))
    assert not rolled.is_empty() and not exposed.is_empty()
    first_exposure, rollback_day = exposed["day"].min(), rolled["day"].min()
    # The guardrail is always valid (it may look every night) and only ~60 people per arm a day meet
    # the paywall: it takes about 500 per arm, 9 days here, to be sure a -47.5% drop is beyond -2%.
    # (The fixed-horizon interval it replaced fired after 3 days, and fired on no effect too.)
    assert (rollback_day - first_exposure).days <= 10, (first_exposure, rollback_day)
    assert rolled["day"].to_list() == [d for d in paywall["day"].to_list() if d >= rollback_day]  # final
    # Decided at the close of the rollback day, actuated from the next: after that nobody meets the popup.
    assert exposed.filter(pl.col("day") > rollback_day + dt.timedelta(days=1)).is_empty()
    trail = audit.read_audit(paths, loop="paywall", kind="rollback")
    assert trail.height == 1
    evidence = json.loads(trail["evidence"][0])["guardrails"][0]
    assert evidence["verdict"] == "rollback" and evidence["upper_bound"] < -0.02
    assert load_features_document(features_document_path(paths))["features"]["paywall_variant"]["rules"][0]["force"] \
        == "control"
    # The paywall reads two metrics: each p-value is stored beside its Holm adjustment across both.
    readouts = [json.loads(r) for r in results.filter((pl.col("experiment") == "paywall-exp-v1")
                                                      & (pl.col("day") == rollback_day))["record"]]
    assert len(readouts) == 2 and {r["p_value_adjustment"] for r in readouts} == {"holm over 2 metric(s)"}
    raw = sorted((r["rel_p_value"], r["rel_p_value_adjusted"]) for r in readouts)
    assert raw[0][1] == pytest.approx(min(1.0, 2 * raw[0][0])) and all(adj >= p for p, adj in raw)

    # -- onboarding contextual bandit: most traffic ends on the best arm of each context ------
    best_by_device = CONFIG.true_effects()["onboarding"]["best_by_device"]
    assert best_by_device == {"desktop": "guided", "mobile": "checklist", "tablet": "guided"}
    weights = _table(paths.loop_decisions("onboarding"), DECISIONS).filter(pl.col("day") == LAST)
    for device, best in best_by_device.items():
        shares = {a.split(":")[1]: p for a, p in zip(weights["action"], weights["propensity"], strict=True)
                  if a.startswith(device)}
        assert max(shares, key=shares.get) == best and shares[best] >= 0.6, (device, shares)
    # What new people actually saw in the last five days (the product's exposure log), per device.
    viewed = read_events(paths, LAST - dt.timedelta(days=4), LAST, names=["experiment_viewed"]).with_columns(
        pl.col("properties").str.json_path_match("$.feature_key").alias("flag"),
        pl.col("properties").str.json_path_match("$.experiment_id").alias("experiment"),
        pl.col("properties").str.json_path_match("$.variation_id").alias("arm")).filter(
        pl.col("flag") == "onboarding_variant")
    for device in ("desktop", "mobile"):
        mine = viewed.filter(pl.col("experiment") == f"onboarding-bandit:{device}")
        assert mine.height > 300
        assert mine.filter(pl.col("arm") == best_by_device[device]).height / mine.height > 0.6, device

    # -- the loops beat the global holdout on activity, and cost no detectable revenue ----------------
    events = read_events(paths, START, LAST)
    people = events.filter(pl.col("event_name") == "user_signed_up").select("person_id").unique()
    from growth_loops.features.rollups import NON_ACTIVITY_EVENTS

    per = people.join(
        events.group_by("person_id").agg(
            pl.col("event_date").filter(~pl.col("event_name").is_in(NON_ACTIVITY_EVENTS)).n_unique().alias("active_days"),
            pl.col("revenue").filter(pl.col("event_name") == "payment_succeeded").sum().alias("revenue")),
        on="person_id", how="left").fill_null(0)
    held = pl.Series(in_holdout_many(per["person_id"], seed=SETTINGS.holdout_seed, share=SETTINGS.holdout_share))
    loops_group, holdout_group = per.filter(~held), per.filter(held)
    assert holdout_group.height > 2000
    active = welch(holdout_group["active_days"].to_numpy().astype(float),
                   loops_group["active_days"].to_numpy().astype(float))
    assert active.ci_low > 0, active
    revenue = welch(holdout_group["revenue"].to_numpy(), loops_group["revenue"].to_numpy())
    # Revenue is no longer above the holdout's here: the harmful popup runs 9 days before its always-valid
    # guardrail is sure (about 650 people meet it, paying half price), which offsets at this sample what
    # the other loops earn. What holds: the loops cost no revenue the data can tell apart from zero.
    assert revenue.ci_high > 0, revenue

    # -- accountable and exactly once: re-running the last day's decisions changes nothing -------
    actions = audit.read_audit(paths, kind="action")
    assert actions.filter(pl.col("loop") == "trial_nudge")["propensity"].drop_nulls().unique().to_list() == [0.5]
    before = (outbox.height, actions.height, document_hash(load_features_document(features_document_path(paths))))
    run_decisions(paths, LAST, settings=SETTINGS,
                  now=dt.datetime.combine(LAST + dt.timedelta(days=1), dt.time(0, 30), tzinfo=dt.UTC))
    after = (_table(outbox_path(paths), MESSAGE_OUTBOX).height, audit.read_audit(paths, kind="action").height,
             document_hash(load_features_document(features_document_path(paths))))
    assert after == before
    assert _table(paths.table("decisions", "loop_runs"), LOOP_RUNS).filter(pl.col("day") == LAST).height == 4
