"""The closed-loop simulator: its landing files pass the contract, it is deterministic and resumable,
and the outbox (GrowthBook flags, messages) changes user behaviour by exactly the configured truth."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import orjson
import polars as pl
import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable

from lake.contracts import load_plan
from lake.errors import ConfigError
from lake.ingest import ingest_partition, list_landing_partitions
from lake.ledger import read_ledger, verify_partition
from lake.silver import build_silver
from simulation.closed_loop import (
    ClosedLoopConfig,
    ClosedLoopSimulator,
    read_message_truth,
    read_truth,
    truth_summary,
)

START = date(2026, 3, 2)
# Fewer in-app actions than the default: the statistical tests need many trials, not many page views.
LEAN = {"extra_sessions_per_day": 0.4, "actions_per_session": 1.0}


def days(n: int, first: date = START) -> list[date]:
    return [first + timedelta(days=k) for k in range(n)]


def landing_bytes(root: Path) -> dict[str, bytes]:
    base = root / "landing" / "events"
    return {str(p.relative_to(base)): p.read_bytes() for p in sorted(base.glob("date=*/hour=*/*.jsonl"))}


def landed_events(root: Path, day: date | None = None) -> list[dict]:
    pattern = f"date={day.isoformat()}/hour=*/*.jsonl" if day else "date=*/hour=*/*.jsonl"
    return [orjson.loads(line) for p in sorted((root / "landing" / "events").glob(pattern))
            for line in p.read_bytes().splitlines()]


def message_frame(rows: list[dict]) -> pl.DataFrame:
    """An outbox-shaped frame (the columns the simulator reads from the real message outbox)."""
    schema = {"message_id": pl.String, "person_id": pl.String, "template": pl.String,
              "created_at": pl.Datetime("us", "UTC"), "sent_at": pl.Datetime("us", "UTC")}
    return pl.DataFrame(rows, schema=schema)


def noon(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 12, tzinfo=UTC)


def paywall_experiment(weights=(0.5, 0.5)) -> dict:
    return {"paywall_variant": {"defaultValue": "control", "rules": [{
        "id": "paywall-test", "key": "paywall-test", "seed": "paywall-test", "hashVersion": 2, "hashAttribute": "id",
        "variations": ["control", "discount_popup"], "weights": list(weights), "coverage": 1.0}]}}


# -- (1) the contract ------------------------------------------------------------------------------
def test_five_days_of_events_ingest_with_zero_quarantine_and_reconcile(paths, masker):
    cfg = ClosedLoopConfig(arrivals_per_day=250, trial_days=2)  # short trials: conversions happen within 5 days
    sim = ClosedLoopSimulator(paths.root, seed=1, start=START, config=cfg)
    truths = [sim.step(d) for d in days(5)]
    landed = sum(t.events_written for t in truths)
    no_consent = sum(t.no_analytics_consent for t in truths)
    assert landed > 10_000 and 0 < no_consent < landed * 0.15
    names = set().union(*(t.events_by_name for t in truths))
    assert {"user_signed_up", "onboarding_step_completed", "trial_started", "subscription_started",
            "payment_succeeded", "feature_used", "page_viewed"} <= names

    plan = load_plan()
    keys = list_landing_partitions(paths)
    assert len(keys) > 100  # hours of the 5 days (a quiet night hour may have no event)
    results = [ingest_partition(paths, k, plan=plan, masker=masker) for k in keys]
    assert all(r.published for r in results)
    ledger = read_ledger(paths, keys)
    total = {c: pc.sum(ledger[c]).as_py() for c in
             ("lines_landed", "bronze_rows", "quarantined", "consent_dropped", "duplicates_dropped")}
    assert total == {"lines_landed": landed, "bronze_rows": landed - no_consent, "quarantined": 0,
                     "consent_dropped": no_consent, "duplicates_dropped": 0}
    assert all(ledger["reconciled"].to_pylist())
    for key in keys:
        assert verify_partition(paths, key).ok, key

    # Identity: every signed-up user (with analytics consent) has their device linked to them.
    build_silver(paths)
    linked = dict(zip(*DeltaTable(paths.silver_identity_map).to_pyarrow_table(
        columns=["anonymous_id", "user_id"]).to_pydict().values(), strict=True))
    users = truths[-1].users.filter(pl.col("analytics_consent"))
    assert users.height > 400
    assert all(linked.get(a) == u for a, u in users.select("anonymous_id", "user_id").iter_rows())


# -- (2) determinism and resuming ------------------------------------------------------------------
def _scenario(sim_for: Callable[[int], ClosedLoopSimulator]) -> None:
    """Five days with every input: flag experiments, and messages decided from the previous day's truth."""
    flags = {"features": {**paywall_experiment(), "onboarding_variant": {"defaultValue": "control", "rules": [{
        "id": "onb", "key": "onb", "seed": "onb", "hashVersion": 2, "hashAttribute": "id",
        "variations": ["control", "guided", "checklist"], "weights": [0.34, 0.33, 0.33], "coverage": 1.0}]}}}
    outbox: list[dict] = []
    for k, d in enumerate(days(5)):
        truth = sim_for(k).step(d, flags_document=flags, messages=message_frame(outbox))
        for uid, in_trial, paying in truth.users.select("user_id", "in_trial", "status").with_columns(
                pl.col("status") == "paying").iter_rows():
            if in_trial or paying:
                template = "trial_nudge" if in_trial else "retention_offer"
                outbox.append({"message_id": f"{d}:{uid}:{template}", "person_id": uid, "template": template,
                               "created_at": noon(d), "sent_at": noon(d) + timedelta(hours=1)})


def test_same_seed_and_inputs_give_identical_files_and_resuming_equals_one_run(tmp_path):
    cfg = ClosedLoopConfig(arrivals_per_day=150, trial_days=2)
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for root in (a, b):
        sim = ClosedLoopSimulator(root, seed=7, start=START, config=cfg)
        _scenario(lambda k, sim=sim: sim)
    # c: the first object stops after day 2; every later day is stepped by a new object, which
    # knows nothing but the root (the persisted users, delivered messages and cursor).
    first = ClosedLoopSimulator(c, seed=7, start=START, config=cfg)
    _scenario(lambda k: first if k < 2 else ClosedLoopSimulator(c, seed=7, start=START, config=cfg))

    files = landing_bytes(a)
    assert len(files) >= 5 * 20 and files == landing_bytes(b) == landing_bytes(c)
    ta, tc = read_truth(a), read_truth(c)
    assert ta.height > 500 and ta.equals(read_truth(b)) and ta.equals(tc)
    assert read_message_truth(a).equals(read_message_truth(c))
    assert truth_summary(a) == truth_summary(c)
    # The scenario exercised every mechanism.
    summary = truth_summary(a)
    assert summary["paywall"]["discount_popup"]["exposed"] > 0 and summary["messages"]["delivered"]["trial_nudge"] > 0
    assert ta["converted_today"].sum() > 0 and len(set(ta["onboarding_variant"].to_list())) == 3

    # Another seed changes the events; the state refuses to be continued with another seed or out of order.
    other = tmp_path / "other"
    ClosedLoopSimulator(other, seed=8, start=START, config=cfg).step(START)
    assert set(landing_bytes(other).values()).isdisjoint(files.values())
    with pytest.raises(ConfigError, match="seed"):
        ClosedLoopSimulator(a, seed=8, start=START, config=cfg)
    with pytest.raises(ConfigError, match="next day"):
        ClosedLoopSimulator(a, seed=7, start=START, config=cfg).step(START + timedelta(days=9))
    assert ClosedLoopSimulator(a, seed=7, start=START, config=cfg).next_day == START + timedelta(days=5)


# -- (3) flags: a GrowthBook force rule --------------------------------------------------------------
def test_a_force_rule_gives_exactly_the_listed_users_the_guided_onboarding(tmp_path):
    cfg = ClosedLoopConfig(arrivals_per_day=200)
    # User ids depend only on the seed, not on the flags: a dry run tells who will sign up on day 1.
    dry = ClosedLoopSimulator(tmp_path / "dry", seed=5, start=START, config=cfg).step(START)
    ids = sorted(dry.users["user_id"].to_list())
    chosen = ids[::2]
    doc = {"features": {"onboarding_variant": {"defaultValue": "control", "rules": [
        {"id": "force-guided", "condition": {"id": {"$in": chosen}}, "force": "guided"}]}}}

    root = tmp_path / "lake"
    sim = ClosedLoopSimulator(root, seed=5, start=START, config=cfg)
    day1 = sim.step(START, flags_document=doc)
    day2 = sim.step(START + timedelta(days=1), flags_document=doc)
    variants = dict(day1.users.select("user_id", "onboarding_variant").iter_rows())
    assert sorted(variants) == ids
    assert {u for u, v in variants.items() if v == "guided"} == set(chosen)
    assert {v for u, v in variants.items() if u not in chosen} == {"control"}
    assert set(day2.users.filter(pl.col("new_today"))["onboarding_variant"]) == {"control"}  # not in the list
    # The exposure is in the events too (onboarding_step_completed.variant), for every step.
    steps = [e for e in landed_events(root, START) if e["event_name"] == "onboarding_step_completed"]
    assert steps and all(e["properties"]["variant"] == ("guided" if e["user_id"] in chosen else "control")
                         for e in steps)
    assert truth_summary(root)["onboarding"]["guided"]["exposed"] == len(chosen)


# -- (4) the trial nudge ------------------------------------------------------------------------------
def test_trial_nudges_to_a_random_half_raise_conversion_by_the_true_lift(tmp_path):
    cfg = ClosedLoopConfig(arrivals_per_day=1000, trial_days=7, marketing_consent_rate=0.9, **LEAN)
    sim = ClosedLoopSimulator(tmp_path, seed=21, start=START, config=cfg)
    rng = np.random.default_rng(2024)
    outbox: list[dict] = []
    treated: set[str] = set()
    for d in days(25):
        truth = sim.step(d, messages=message_frame(outbox))  # the whole outbox every day, as a sender re-reads it
        new = truth.users.filter(pl.col("trial_started_today") & pl.col("marketing_consent"))["user_id"].to_list()
        for uid in sorted(new):
            if rng.random() < 0.5:  # the loop's randomization: decided on the trial's first day
                treated.add(uid)
                outbox.append({"message_id": f"nudge:{uid}", "person_id": uid, "template": "trial_nudge",
                               "created_at": noon(d), "sent_at": None})

    msgs = read_message_truth(tmp_path)
    due = [m for m in outbox if m["created_at"] < noon(days(25)[-1])]  # the last day's wait for a next step
    assert msgs.height == msgs["message_key"].n_unique() == len(due) > 800  # each delivered once …
    assert msgs["effective"].all() and not msgs["consent_violation"].any()  # … during the trial, with consent

    ended = read_truth(tmp_path).filter(pl.col("paywall_exposed_today") & pl.col("marketing_consent"))
    assert set(ended.filter(pl.col("nudged"))["user_id"]) == treated & set(ended["user_id"])
    # Truth: the nudge adds exactly the configured lift to each nudged user's conversion probability.
    lift = (ended["p_convert"] - ended["p_convert_base"]).to_numpy()
    nudged = ended["nudged"].to_numpy()
    assert np.allclose(lift[nudged], cfg.trial_nudge_lift, atol=1e-12) and np.allclose(lift[~nudged], 0.0, atol=1e-12)
    assert (ended["converted_today"] == (ended["u_convert"] < ended["p_convert"])).all()

    # Observed: the difference in conversion rates estimates the lift; 4 standard errors is a
    # deliberately wide band (a false alarm about once in 16,000 seeds).
    conv = ended["converted_today"].to_numpy()
    n1, n0 = nudged.sum(), (~nudged).sum()
    p1, p0 = conv[nudged].mean(), conv[~nudged].mean()
    se = math.sqrt(p1 * (1 - p1) / n1 + p0 * (1 - p0) / n0)
    assert min(n1, n0) > 400 and se < 0.035
    assert abs((p1 - p0) - cfg.trial_nudge_lift) < 4 * se, (p1 - p0, se)
    summary = truth_summary(tmp_path)["trial_nudge"]
    assert summary["true_lift"] == cfg.trial_nudge_lift
    assert summary["mean_true_probability_lift"] == pytest.approx(cfg.trial_nudge_lift)


# -- (5) the harmful paywall variant ------------------------------------------------------------------
def test_the_discount_popup_lowers_revenue_per_exposed_user_by_the_true_amount(tmp_path):
    cfg = ClosedLoopConfig(arrivals_per_day=1000, trial_days=7, **LEAN)
    true_rel = cfg.true_effects()["paywall"]["discount_popup"]["relative_revenue_per_exposed"]
    assert true_rel == pytest.approx(1.05 * 0.80 - 1)
    sim = ClosedLoopSimulator(tmp_path, seed=33, start=START, config=cfg)
    doc = {"features": paywall_experiment()}
    for d in days(20):
        sim.step(d, flags_document=doc)

    exposed = read_truth(tmp_path).filter(pl.col("paywall_exposed_today"))
    by = {v: exposed.filter(pl.col("paywall_variant") == v) for v in ("control", "discount_popup")}
    assert min(f.height for f in by.values()) > 600
    # The SDK's assignment, re-evaluated here independently, is what the users saw.
    from growthbook import GrowthBook

    for uid, variant in exposed.select("user_id", "paywall_variant").head(200).iter_rows():
        assert GrowthBook(attributes={"id": uid}, features=doc["features"]).get_feature_value(
            "paywall_variant", "control") == variant
    # The product logs each exposure (experiment_viewed, GrowthBook's tracking callback): the
    # exposure log names exactly the users and variants the truth says saw the paywall.
    viewed = {(e["user_id"], e["properties"]["variation_id"]) for e in landed_events(tmp_path)
              if e["event_name"] == "experiment_viewed" and e["properties"]["feature_key"] == "paywall_variant"}
    assert viewed == set(exposed.select("user_id", "paywall_variant").iter_rows())
    assert {e["properties"]["experiment_id"] for e in landed_events(tmp_path)
            if e["event_name"] == "experiment_viewed"} == {"paywall-test"}
    # Truth, per user: expected revenue under the variant vs. under control differs by exactly the effect.
    disc = by["discount_popup"]
    assert np.allclose((disc["expected_revenue"] / disc["expected_revenue_control"]).to_numpy(), 1 + true_rel)
    ctrl = by["control"]
    assert np.allclose(ctrl["expected_revenue"].to_numpy(), ctrl["expected_revenue_control"].to_numpy())
    assert np.allclose(disc["amount"].filter(disc["converted_today"]).to_numpy(),
                       [round(cfg.plan_prices[p] * 0.8, 2) for p in disc.filter(pl.col("converted_today"))["plan"]])
    # Truth, per arm: expected revenue per exposed user (the arms differ only by sampling of users).
    exp = {v: f["expected_revenue"].mean() for v, f in by.items()}
    assert exp["discount_popup"] / exp["control"] - 1 == pytest.approx(true_rel, abs=0.06)

    # Observed conversion-day revenue per exposed user: a delta-method standard error, 4 SE band.
    rev = {v: f["revenue_today"].to_numpy() for v, f in by.items()}
    m = {v: r.mean() for v, r in rev.items()}
    rel = m["discount_popup"] / m["control"] - 1
    se = (m["discount_popup"] / m["control"]) * math.sqrt(
        sum(r.var(ddof=1) / (len(r) * r.mean() ** 2) for r in rev.values()))
    assert abs(rel - true_rel) < 4 * se, (rel, se)
    summary = truth_summary(tmp_path)["paywall"]
    assert summary["discount_popup"]["true_relative_revenue_per_exposed"] == pytest.approx(true_rel)
    assert summary["discount_popup"]["observed_relative_revenue_per_exposed"] == pytest.approx(rel)


def test_counterfactual_worlds_pair_users_so_the_realized_revenue_effect_is_tight(tmp_path):
    """Same seed, everyone on control (no flags) vs. everyone on the popup (a force rule): outcome
    draws are keyed per user, so the same users reach the paywall in both worlds and the realized
    revenue ratio has almost no sampling noise left."""
    cfg = ClosedLoopConfig(arrivals_per_day=1000, trial_days=7, **LEAN)
    popup = {"features": {"paywall_variant": {"defaultValue": "control", "rules": [
        {"id": "rollout", "force": "discount_popup"}]}}}
    worlds, signups = {}, {}
    for name, doc in (("control", None), ("discount_popup", popup)):
        sim = ClosedLoopSimulator(tmp_path / name, seed=33, start=START, config=cfg)
        for d in days(16):
            sim.step(d, flags_document=doc)
        truth = read_truth(tmp_path / name)
        worlds[name] = truth.filter(pl.col("paywall_exposed_today")).sort("user_id")
        signups[name] = truth.filter(pl.col("new_today")).select("user_id", "signup_day").sort("user_id")
    # The same visitors sign up on the same days in both worlds, the late sign-ups (after return visits) too:
    # arrival times and delays are keyed, not drawn from the day's stream the paywall's events shift.
    assert signups["control"].height > 5_000 and signups["control"].equals(signups["discount_popup"])
    ctrl, disc = worlds["control"], worlds["discount_popup"]
    assert ctrl.height > 800 and ctrl["user_id"].equals(disc["user_id"])
    assert set(ctrl["paywall_variant"]) == {"control"} and set(disc["paywall_variant"]) == {"discount_popup"}
    assert disc["converted_today"].sum() >= ctrl["converted_today"].sum()  # same draws, higher probability
    rel = disc["revenue_today"].sum() / ctrl["revenue_today"].sum() - 1
    assert rel == pytest.approx(cfg.true_effects()["paywall"]["discount_popup"]["relative_revenue_per_exposed"],
                                abs=0.04)


# -- (6) consent ------------------------------------------------------------------------------------
def test_a_message_to_a_user_without_marketing_consent_is_ignored_and_recorded_as_a_violation(tmp_path):
    cfg = ClosedLoopConfig(arrivals_per_day=200, email_open_rate=1.0, email_click_rate=1.0)
    sim = ClosedLoopSimulator(tmp_path, seed=9, start=START, config=cfg)
    users = sim.step(START).users.filter(pl.col("analytics_consent"))  # analytics: their events would land
    refused = users.filter(~pl.col("marketing_consent"))["user_id"][0]
    # open rate 1.0 x (0.5 + engagement) (simulation.behaviour): from engagement 0.5 every email is opened
    granted = users.filter(pl.col("marketing_consent") & (pl.col("engagement") >= 0.5))["user_id"][0]
    outbox = message_frame([
        {"message_id": f"m-{u}", "person_id": u, "template": "weekly_digest", "created_at": noon(START),
         "sent_at": None}
        for u in (refused, granted)])

    day2 = START + timedelta(days=1)
    truth = sim.step(day2, messages=outbox)
    landed = [e for e in landed_events(tmp_path, day2) if e["event_name"].startswith("email_")]
    emails = [e for e in landed if e["properties"]["campaign"] == "weekly_digest"]  # not the product's own email
    assert {(e["user_id"], e["event_name"]) for e in emails} == {(granted, "email_opened"), (granted, "email_clicked")}
    # The product's lifecycle email reaches the refusing user only where it needs no marketing consent.
    assert {e["properties"]["campaign"] for e in landed if e["user_id"] == refused} <= {
        "welcome", "onboarding_nudge", "trial_ending"}
    rows = dict(truth.users.select("user_id", "consent_violations_today").iter_rows())
    assert rows[refused] == 1 and rows[granted] == 0
    violations = truth.messages.filter(pl.col("consent_violation"))
    assert violations["person_id"].to_list() == [refused] and not violations["opened"].any()

    sim.step(day2 + timedelta(days=1), messages=outbox)  # passed again: already delivered, nothing happens
    assert read_message_truth(tmp_path).height == 2
    assert truth_summary(tmp_path)["messages"]["consent_violations"] == 1


def test_a_run_of_an_earlier_model_is_refused_with_what_changed_and_what_to_do(tmp_path):
    cfg = ClosedLoopConfig(arrivals_per_day=50)
    ClosedLoopSimulator(tmp_path, seed=1, start=START, config=cfg).step(START)
    cursor_path = tmp_path / "simulator" / "closed_loop" / "cursor.json"
    cursor = orjson.loads(cursor_path.read_bytes())
    cursor["config"]["signup_rate"] = 0.40  # a parameter of the model before the shared behaviour
    cursor_path.write_bytes(orjson.dumps(cursor))
    with pytest.raises(ConfigError, match=r"earlier simulator model \(parameters since removed: signup_rate\)") as err:
        ClosedLoopSimulator(tmp_path, seed=1, start=START, config=cfg)
    assert "fresh root" in str(err.value)
    with pytest.raises(ConfigError, match="signup_rate"):
        truth_summary(tmp_path)
    # A root of the model before visitors came back and signed up later (state version 1) is refused too.
    del cursor["config"]["signup_rate"]
    cursor["version"] = 1
    cursor_path.write_bytes(orjson.dumps(cursor))
    with pytest.raises(ConfigError, match=r"earlier simulator model \(state version 1, this model writes 2\)"):
        ClosedLoopSimulator(tmp_path, seed=1, start=START, config=cfg)
