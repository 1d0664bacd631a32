"""One product, one set of rules: the behaviour both simulators share (``simulation.behaviour``) takes its
parameters from ``ProductModel`` alone, each simulator's truth records the same function of the same
traits, and what each lands agrees with it."""

from __future__ import annotations

import math
from dataclasses import fields
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import orjson
import polars as pl
import pytest

from simulation import ClosedLoopConfig, ProductModel, SimulatorConfig, simulate
from simulation.behaviour import (
    ENGAGEMENT,
    MARKETING_CAMPAIGNS,
    PAYMENT_RETRY_DAYS,
    PRIMARY_DEVICE_SHARE,
    SIGNUP_DELAY_MEAN_DAYS,
    activated,
    dormancy_hazard,
    is_weekend,
    late_conversion_probability,
    lifecycle_may_send,
    lifecycle_sends,
    open_probability,
    p_active_today,
    p_cancel_monthly,
    p_convert,
    p_onboarding_step,
    p_signup,
    p_team,
    p_trial,
)
from simulation.catalog import CHANNELS
from simulation.closed_loop import ClosedLoopSimulator, read_message_truth, read_truth
from simulation.formats import MS_DAY

START = date(2026, 3, 2)  # a Monday


def _date(day_number: int) -> date:
    return date(1970, 1, 1) + timedelta(days=day_number)


def within(observed: float, expected: float, variance: float, k: float = 4.0) -> bool:
    return abs(observed - expected) <= k * math.sqrt(variance)


def test_both_configs_take_each_shared_parameter_from_the_product_model_and_redefine_none():
    shared = {f.name for f in fields(ProductModel)}
    assert {"signup_base", "trial_base", "trial_team_share", "convert_base", "early_conversion_share",
            "active_daily_base", "cancel_monthly_base", "dormancy_daily_base", "paying_dormancy_factor",
            "weekend_activity_factor", "payment_failure_rate", "extra_sessions_per_day", "actions_per_session",
            "email_open_rate"} <= shared
    for cls in (SimulatorConfig, ClosedLoopConfig):
        assert not shared & set(cls.__dict__.get("__annotations__", {})), cls  # no second default, no second meaning
    product, events, loop = ProductModel(), SimulatorConfig(), ClosedLoopConfig()
    assert all(getattr(product, n) == getattr(events, n) == getattr(loop, n) for n in shared)
    # The second names and meanings are gone: the event simulator's "churn" (going dormant) and the closed
    # loop's own funnel rates, which disagreed with the event simulator's (trial_base 0.25 against 0.42).
    assert not {"churn_daily_base", "paying_churn_factor"} & {f.name for f in fields(SimulatorConfig)}
    assert not {"signup_rate", "team_plan_share", "trial_conversion_base", "churn_daily_base", "active_base",
                "trial_start_max_delay_days", "onboarded_trial_multiplier", "extra_sessions_mean",
                "actions_per_session_mean"} & {f.name for f in fields(ClosedLoopConfig)}


def test_the_event_simulator_goes_dormant_by_the_shared_hazard(tmp_path):
    cfg = SimulatorConfig()
    simulate(str(tmp_path), users=3_000, days=14, seed=11, start=START, fault_rate=0.0, config=cfg)
    users = pl.read_parquet(tmp_path / "simulator" / "truth" / "users.parquet").filter(
        pl.col("signup_ts").is_not_null())
    assert users.height > 800
    # The truth records the shared rule, per user.
    assert np.array_equal(users["p_churn_daily"].to_numpy(), dormancy_hazard(cfg, users["engagement"].to_numpy()))
    # Observed: people who went dormant against the hazard summed over the days each was exposed to it.
    last_day = (START + timedelta(days=14) - date(1970, 1, 1)).days - 1
    expected = variance = 0.0
    for signup, churned, converted, p in users.select(
            pl.col("signup_ts").dt.epoch("ms"), pl.col("churned_ts").dt.epoch("ms"),
            pl.col("converted_ts").dt.epoch("ms"), "p_churn_daily").iter_rows():
        stop = churned // MS_DAY if churned is not None else last_day
        for day in range(signup // MS_DAY + 1, stop + 1):
            h = p * (cfg.paying_dormancy_factor if converted is not None and day * MS_DAY >= converted else 1.0)
            expected, variance = expected + h, variance + h * (1 - h)
    observed = users["churned_ts"].is_not_null().sum()
    assert observed > 300 and within(observed, expected, variance), (observed, expected, variance)


def _landed(root: Path) -> list[dict]:
    return [orjson.loads(line) for p in sorted((root / "landing" / "events").rglob("*.jsonl"))
            for line in p.read_bytes().splitlines()]


def test_the_closed_loop_applies_the_same_rules(tmp_path):
    cfg = ClosedLoopConfig(arrivals_per_day=400, trial_days=2, billing_period_days=5, payment_failure_rate=0.3,
                           extra_sessions_per_day=0.4, actions_per_session=1.0)
    sim = ClosedLoopSimulator(tmp_path, seed=3, start=START, config=cfg)
    outbox: list[dict] = []
    schema = {"message_id": pl.String, "person_id": pl.String, "template": pl.String,
              "created_at": pl.Datetime("us", "UTC"), "sent_at": pl.Datetime("us", "UTC")}
    from datetime import UTC, datetime

    for k in range(21):
        day = START + timedelta(days=k)
        truth = sim.step(day, messages=pl.DataFrame(outbox, schema=schema))
        noon = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
        outbox += [{"message_id": f"{day}:{u}", "person_id": u, "template": "weekly_digest", "created_at": noon,
                    "sent_at": noon} for u in truth.users.filter(pl.col("marketing_consent"))["user_id"].to_list()]
    truth = read_truth(tmp_path)

    # Dormancy: the hazard recorded for each awake user-day is the event simulator's function, paying
    # factor included; observed falls match it.
    exposed = truth.filter(pl.col("p_dormant").is_not_null())
    rule = dormancy_hazard(cfg, exposed["engagement"].to_numpy(), paying=(exposed["status"] == "paying").to_numpy())
    assert np.array_equal(exposed["p_dormant"].to_numpy(), rule)
    fell = (exposed["dormant_day"] == exposed["day"]).sum()
    p = exposed["p_dormant"].to_numpy()
    assert fell > 500 and within(fell, p.sum(), (p * (1 - p)).sum()), (fell, p.sum())
    # A dormant user has no session after the day they fell (forced days aside: the paywall at a trial's end).
    later = truth.filter(pl.col("dormant_day") < pl.col("day"))
    assert later.height > 0 and later.filter(pl.col("active_today") & ~pl.col("paywall_exposed_today")).is_empty()

    # Weekends: the activity probability is lowered by the shared factor.
    dn = truth["day"].dt.epoch("d").to_numpy()
    weekend = is_weekend(dn)
    active_p = truth["p_active"].to_numpy()
    has_p = ~np.isnan(active_p.astype(float))
    assert weekend.any() and (active_p[has_p & weekend] <= 0.97 * cfg.weekend_activity_factor + 1e-12).all()

    # Failed renewals: the shared rate, a retry PAYMENT_RETRY_DAYS later that succeeds, billing dates unmoved.
    attempts = truth.filter(pl.col("payment_failed_today") | (pl.col("payment_today") & ~pl.col("converted_today")))
    failed = int(attempts["payment_failed_today"].sum())
    n = attempts.height
    assert failed > 50 and within(failed, n * 0.3, n * 0.3 * 0.7), (failed, n)
    by_user = {(u, d): (paid, fail, st) for u, d, paid, fail, st in
               truth.select("user_id", "day", "payment_today", "payment_failed_today", "status").iter_rows()}
    last = truth["day"].max()
    checked = 0
    for user, day in truth.filter(pl.col("payment_failed_today")).select("user_id", "day").iter_rows():
        retry, renew = day + timedelta(days=PAYMENT_RETRY_DAYS), day + timedelta(days=cfg.billing_period_days)
        if renew > last or by_user[(user, renew)][2] != "paying":
            continue  # past the run, or cancelled before the next renewal
        assert by_user[(user, retry)][0] and not by_user[(user, retry)][1], (user, day)
        assert by_user[(user, renew)][0] or by_user[(user, renew)][1], (user, day)  # anchored: due again then
        checked += 1
    assert checked > 20
    names = {e["event_name"] for e in _landed(tmp_path)}
    assert "payment_failed" in names

    # Email opens: the shared probability (engagement, dormancy), against what was opened.
    msgs = read_message_truth(tmp_path).filter(pl.col("known_recipient") & ~pl.col("consent_violation"))
    state = truth.select("day", pl.col("user_index"), "engagement", "dormant_day")
    rows = msgs.join(state, on=["day", "user_index"], how="left")
    # Dormant at delivery: fell on an earlier day (deliveries come before the day's draw).
    dormant = (rows["dormant_day"].is_not_null() & (rows["dormant_day"] < rows["day"])).to_numpy()
    p_open = open_probability(cfg, rows["engagement"].to_numpy(), dormant)
    opened = int(rows["opened"].sum())
    assert rows.height > 3_000 and dormant.any()
    assert within(opened, p_open.sum(), (p_open * (1 - p_open)).sum()), (opened, p_open.sum())


@pytest.mark.parametrize("sim", ["events", "closed_loop"])
def test_a_failed_renewal_is_retried_after_the_same_delay_in_both_simulators(tmp_path, sim):
    if sim == "events":
        cfg_e = SimulatorConfig(billing_period_days=4, trial_days=2, payment_failure_rate=0.4)
        simulate(str(tmp_path), users=1_500, days=14, seed=2, start=START, fault_rate=0.0, config=cfg_e)
    else:
        cfg_c = ClosedLoopConfig(arrivals_per_day=1000, trial_days=2, billing_period_days=4, payment_failure_rate=0.4,
                                 extra_sessions_per_day=0.4, actions_per_session=1.0)
        s = ClosedLoopSimulator(tmp_path, seed=2, start=START, config=cfg_c)
        for k in range(14):
            s.step(START + timedelta(days=k))
    events = sorted((e["user_id"], e["timestamp"][:10], e["event_name"]) for e in _landed(tmp_path)
                     if e["event_name"] in ("payment_failed", "payment_succeeded"))
    paid = {(u, d) for u, d, name in events if name == "payment_succeeded"}
    failures = [(u, d) for u, d, name in events if name == "payment_failed"]
    end = START + timedelta(days=14)
    due = [(u, d) for u, d in failures if date.fromisoformat(d) + timedelta(days=PAYMENT_RETRY_DAYS) < end]
    assert len(due) > 10, len(due)
    retried = [(u, (date.fromisoformat(d) + timedelta(days=PAYMENT_RETRY_DAYS)).isoformat()) in paid for u, d in due]
    # Every retry succeeds, unless the subscription was cancelled in between (rare at these rates).
    assert sum(retried) >= 0.9 * len(due), (sum(retried), len(due))


def test_the_funnel_is_one_rule_in_both_simulators(tmp_path):
    events = SimulatorConfig()
    simulate(str(tmp_path / "events"), users=2_000, days=7, seed=4, start=START, fault_rate=0.0, config=events)
    users = pl.read_parquet(tmp_path / "events" / "simulator" / "truth" / "users.parquet")
    e, ps = users["engagement"].to_numpy(), users["price_sensitivity"].to_numpy()
    for column, rule in (("p_trial", p_trial(events, e, ps)), ("p_team", p_team(events, ps)),
                         ("p_convert", p_convert(events, e, ps)), ("p_cancel_monthly", p_cancel_monthly(events, ps))):
        assert np.array_equal(users[column].to_numpy(), rule), column
    guided = (users["onboarding_variant"] == "guided").to_numpy()
    assert np.array_equal(users["p_onboarding_step"].to_numpy(),
                          p_onboarding_step(events, e, events.onboarding_step_lift["guided"] * guided))

    loop = ClosedLoopConfig(arrivals_per_day=800, trial_days=4, extra_sessions_per_day=0.4, actions_per_session=1.0)
    sim = ClosedLoopSimulator(tmp_path / "loop", seed=4, start=START, config=loop)
    days = [sim.step(START + timedelta(days=k)) for k in range(12)]
    truth = read_truth(tmp_path / "loop")
    last = truth.filter(pl.col("day") == pl.col("day").max())
    e, ps = last["engagement"].to_numpy(), last["price_sensitivity"].to_numpy()
    assert np.array_equal(last["p_trial"].to_numpy(), p_trial(loop, e, ps))
    lifts = [loop.step_lift(v, d) for v, d in last.select("onboarding_variant", "device_type").iter_rows()]
    step = p_onboarding_step(loop, e, np.array(lifts))
    assert np.array_equal(last["p_onboarding_step"].to_numpy(), step)
    # Observed: completing every step, against the shared p_step ** steps.
    done, p_done = int(last["onboarding_completed"].sum()), step ** 5
    assert done > 200 and within(done, p_done.sum(), (p_done * (1 - p_done)).sum()), (done, p_done.sum())
    ended = truth.filter(pl.col("paywall_exposed_today"))
    late = late_conversion_probability(loop, p_convert(loop, ended["engagement"].to_numpy(),
                                                       ended["price_sensitivity"].to_numpy()))
    assert ended.height > 300 and np.allclose(ended["p_convert_base"].to_numpy(), late, rtol=0, atol=1e-15)

    # Sign-ups: the same p_signup over the same trait distributions (its population mean by sampling).
    rng = np.random.default_rng(0)
    shares = np.array([c[0] for c in CHANNELS.values()])
    mult = np.array([c[1] for c in CHANNELS.values()])[rng.choice(len(shares), 400_000, p=shares / shares.sum())]
    mean_p = p_signup(loop, rng.beta(*ENGAGEMENT, 400_000), mult).mean()
    # A visitor signs up on the first visit (first_visit_signup_share) or 2 h plus an exponential delay later,
    # so the window holds the sign-ups whose delay ends before it does: integrate over the arrival hours.
    hours = np.asarray(loop.hourly_profile[:22])
    minutes = np.arange(22 * 60) + 0.5  # arrivals fall in the first 22 hours of a day, per the hourly profile
    weights = hours[(minutes // 60).astype(int)] / hours.sum() / 60
    expected = variance = 0.0
    for k, d in enumerate(days):
        left = (len(days) - k) * MS_DAY - minutes * 60_000  # time from the arrival to the window's end
        late = 1 - np.exp(-np.maximum(0.0, left - 2 * 3_600_000) / (SIGNUP_DELAY_MEAN_DAYS * MS_DAY))
        share = loop.first_visit_signup_share
        p_in = mean_p * float(np.sum(weights * (share + (1 - share) * late)))
        expected, variance = expected + d.arrivals * p_in, variance + d.arrivals * p_in * (1 - p_in)
    signups = sum(d.signups for d in days)
    assert signups < sum(d.arrivals for d in days) * mean_p  # some sign up after the window
    assert within(signups, expected, variance), (signups, expected)
    signed_at = last["signed_up_at"].dt.epoch("ms").to_numpy()
    assert (last["signup_day"].to_physical().to_numpy() == signed_at // MS_DAY).all()

    # Early conversions: p_convert x early_conversion_share of the trials, before the paywall.
    trials = truth.filter(pl.col("trial_start_day").is_not_null() & (pl.col("day") == pl.col("day").max())
                          & (pl.col("trial_start_day") <= START + timedelta(days=12 - loop.trial_days)))
    p_early = p_convert(loop, trials["engagement"].to_numpy(), trials["price_sensitivity"].to_numpy()) \
        * loop.early_conversion_share
    early = trials.filter(pl.col("converted_day").is_not_null() & (pl.col("converted_day") < pl.col("trial_end_day")))
    assert trials.height > 500 and early.height > 50
    assert within(early.height, p_early.sum(), (p_early * (1 - p_early)).sum()), (early.height, p_early.sum())
    assert early["paywall_variant"].null_count() == early.height  # they never met the paywall


def _sessions_started(events: list[dict]) -> dict[tuple[str, str], str]:
    """(user, session) -> the day its first event happened, for known users' sessions, sign-up sessions left out."""
    first: dict[tuple[str, str], str] = {}
    signup: set[str] = set()
    for e in events:
        if e["user_id"] is None or e["session_id"] is None:
            continue
        key = (e["user_id"], e["session_id"])
        first[key] = min(first.get(key, e["timestamp"]), e["timestamp"])
        if e["event_name"] == "user_signed_up":
            signup.add(e["session_id"])
    return {k: ts[:10] for k, ts in first.items() if k[1] not in signup}


def test_activation_is_the_same_rule_in_both_simulators(tmp_path):
    """Completed onboarding and the status raise daily activity in the event stream as in the closed loop."""
    lean = {"extra_sessions_per_day": 0.0, "actions_per_session": 1.0}  # one short session a day: no spill-over
    cfg = SimulatorConfig(**lean)
    days = 14
    simulate(str(tmp_path / "events"), users=4_000, days=days, seed=5, start=START, fault_rate=0.0, config=cfg)
    users = pl.read_parquet(tmp_path / "events" / "simulator" / "truth" / "users.parquet").filter(
        pl.col("signup_ts").is_not_null())
    active = {(u, day) for (u, _), day in _sessions_started(_landed(tmp_path / "events")).items()}
    last_day = (START + timedelta(days=days) - date(1970, 1, 1)).days - 1
    tally = {True: [0, 0.0, 0.0], False: [0, 0.0, 0.0]}  # onboarded: observed, expected, variance
    cols = [pl.col(c).dt.epoch("ms") for c in ("signup_ts", "trial_start_ts", "converted_ts", "cancelled_ts",
                                               "churned_ts")]
    for uid, steps, p_base, signup, trial, converted, cancelled, churned in users.select(
            "user_id", "onboarding_steps_completed", "p_active_daily", *cols).iter_rows():
        onboarded = steps == 5
        stop = churned // MS_DAY - 1 if churned is not None else last_day
        for day in range(signup // MS_DAY + 1, stop + 1):
            t = day * MS_DAY
            status = ("churned" if cancelled is not None and cancelled <= t else
                      "paying" if converted is not None and converted <= t else
                      "free" if trial is None or trial > t else
                      "trial" if t < trial + cfg.trial_days * MS_DAY else "expired")
            p = activated(cfg, p_base, onboarded=onboarded, status=status, day_number=day)
            row = tally[onboarded]
            row[0] += (uid, _date(day).isoformat()) in active
            row[1] += p
            row[2] += p * (1 - p)
    for onboarded, (observed, expected, variance) in tally.items():
        assert expected > 300 and within(observed, expected, variance), (onboarded, observed, expected)

    loop = ClosedLoopConfig(arrivals_per_day=600, trial_days=4, **lean)
    sim = ClosedLoopSimulator(tmp_path / "loop", seed=6, start=START, config=loop)
    for k in range(days):
        sim.step(START + timedelta(days=k))
    truth = read_truth(tmp_path / "loop").filter(pl.col("p_active").is_not_null())
    # The status the day's activity was drawn under: a trial started in today's session was still free.
    status = np.where(truth["trial_started_today"].to_numpy(), "free", truth["status"].to_numpy().astype(object))
    dn = truth["day"].dt.epoch("d").to_numpy()
    rule = np.array([p_active_today(loop, e, onboarded=o, status=s, day_number=int(d)) for e, o, s, d in
                     zip(truth["engagement"].to_numpy(), truth["onboarding_completed"].to_numpy(), status, dn,
                         strict=True)])
    assert np.allclose(truth["p_active"].to_numpy(), rule, rtol=0, atol=1e-12)
    drawn = truth.filter(pl.col("p_dormant").is_not_null() & (pl.col("dormant_day").is_null()
                                                             | (pl.col("dormant_day") != pl.col("day")))
                         & ~pl.col("paywall_exposed_today"))
    for onboarded in (True, False):
        part = drawn.filter(pl.col("onboarding_completed") == onboarded)
        p = part["p_active"].to_numpy()
        observed = int(part["active_today"].sum())
        assert p.sum() > 300 and within(observed, p.sum(), (p * (1 - p)).sum()), (onboarded, observed, p.sum())


@pytest.mark.parametrize("sim", ["events", "closed_loop"])
def test_visitors_devices_consent_and_lifecycle_email_follow_the_same_rules(tmp_path, sim):
    """Sign-ups after anonymous return visits, sessions across devices, consent changes and the product's
    lifecycle email: the same shares in both simulators, from the same rules and ProductModel parameters."""
    lean = {"extra_sessions_per_day": 0.4, "actions_per_session": 1.0}
    days = 14
    if sim == "events":
        cfg: ProductModel = SimulatorConfig(trial_days=7, **lean)
        simulate(str(tmp_path), users=6_000, days=days, seed=8, start=START, fault_rate=0.0, config=cfg)
    else:
        cfg = ClosedLoopConfig(arrivals_per_day=500, trial_days=7, **lean)
        s = ClosedLoopSimulator(tmp_path, seed=8, start=START, config=cfg)
        for k in range(days):
            s.step(START + timedelta(days=k))
    events = _landed(tmp_path)
    # Sign-ups: first_visit_signup_share on the first visit, the others after a visit of their own.
    anon_sessions: dict[str, set[str]] = {}
    for e in events:
        if e["user_id"] is None:
            anon_sessions.setdefault(e["anonymous_id"], set()).add(e["session_id"])
    signups = [e for e in events if e["event_name"] == "user_signed_up"]
    later = sum(bool(anon_sessions.get(e["anonymous_id"], set()) - {e["session_id"]}) for e in signups)
    share_later = later / len(signups)
    # A delayed sign-up (2 h + 1.5 days on average) falls in the window a little less often than a first-visit one.
    assert len(signups) > 1_000 and 0.30 < share_later < 1 - cfg.first_visit_signup_share + 0.01, share_later
    # A late sign-up carries the acquisition of the visitor's first visit (referrer, UTM), as the first page did.
    first_page: dict[str, dict] = {}
    for e in sorted((e for e in events if e["user_id"] is None), key=lambda e: e["timestamp"]):
        first_page.setdefault(e["anonymous_id"], e["properties"])
    keys = ("referrer", "utm_source", "utm_medium", "utm_campaign")
    late = [e for e in signups if anon_sessions.get(e["anonymous_id"], set()) - {e["session_id"]}]
    assert late and all({k: e["properties"].get(k) for k in keys} == {
        k: first_page[e["anonymous_id"]].get(k) for k in keys} for e in late)
    # Devices: 1-3 per person; a session is on the arrival device with PRIMARY_DEVICE_SHARE if there are more.
    arrival_anon = {e["user_id"]: e["anonymous_id"] for e in signups}
    signup_sessions = {e["session_id"] for e in signups}
    sessions = {}
    for e in events:
        if (e["user_id"] in arrival_anon and e["session_id"] not in signup_sessions and e["session_id"] is not None
                and e["event_name"] == "page_viewed"):
            sessions.setdefault((e["user_id"], e["session_id"]), e["anonymous_id"])
    on_first = np.mean([anon == arrival_anon[u] for (u, _), anon in sessions.items()])
    w = np.asarray(cfg.device_count_weights) / sum(cfg.device_count_weights)
    expected_first = w[0] + (1 - w[0]) * PRIMARY_DEVICE_SHARE
    assert len(sessions) > 3_000 and abs(on_first - expected_first) < 0.025, (on_first, expected_first)
    logins = [e for e in events if e["event_name"] == "user_logged_in"]
    assert logins and all(e["anonymous_id"] != arrival_anon[e["user_id"]] for e in logins)
    # Consent changes: consent_change_rate of the sign-ups flip marketing consent, at a session.
    changes = [e for e in events if e["event_name"] == "consent_updated"]
    assert 0 < len(changes) < 3 * cfg.consent_change_rate * len(signups) and all(e["session_id"] for e in changes)
    # Lifecycle email: every campaign; newsletter and win-back only to users with marketing consent then.
    opened = [e for e in events if e["event_name"] == "email_opened"]
    assert {"welcome", "onboarding_nudge", "trial_ending", "winback", "newsletter"} <= {
        e["properties"]["campaign"] for e in opened}
    assert all(e["context"]["consent"]["marketing"] for e in opened
               if e["properties"]["campaign"] in MARKETING_CAMPAIGNS)
    welcomed = {e["user_id"] for e in opened if e["properties"]["campaign"] == "welcome"}
    # Welcome opens: the shared open probability of the (awake) new users, engagement 0.44 on average.
    assert 0.5 * cfg.email_open_rate < len(welcomed) / len(signups) < 1.5 * cfg.email_open_rate


def test_the_lifecycle_prefilter_keeps_every_user_the_schedule_sends_to():
    """The closed loop evaluates lifecycle_sends only for lifecycle_may_send's users: over every weekday,
    trial length and schedule offset, no user with a send that day may be left out."""
    rng = np.random.default_rng(4)
    n, day0 = 20_000, (START - date(1970, 1, 1)).days
    for trial_days in (2, 3, 7, 14):
        cfg = ProductModel(trial_days=trial_days)
        signup = day0 * MS_DAY + rng.integers(0, 30 * MS_DAY, n)
        trial = np.where(rng.random(n) < 0.5, signup + rng.integers(0, 4 * MS_DAY, n), -1)
        dormant = np.where(rng.random(n) < 0.3, signup // MS_DAY + rng.integers(1, 20, n), -1)
        welcome, nudge = rng.random(n), rng.random(n)
        for dn in range(day0, day0 + 45):
            may = lifecycle_may_send(cfg, dn, signup_day=np.where(signup // MS_DAY <= dn, signup // MS_DAY, dn + 99),
                                     trial_start_day=np.where(trial >= 0, trial // MS_DAY, -1), dormant_day=dormant)
            for i in np.flatnonzero(~may & (signup // MS_DAY <= dn))[:400].tolist():
                sends = lifecycle_sends(cfg, signup_ms=int(signup[i]), onboarded=False,
                                        trial_ms=None if trial[i] < 0 else int(trial[i]), converted_ms=None,
                                        dormant_ms=None if dormant[i] < 0 else int(dormant[i]) * MS_DAY,
                                        welcome_u=float(welcome[i]), nudge_u=float(nudge[i]),
                                        since_ms=dn * MS_DAY, until_ms=(dn + 1) * MS_DAY)
                assert not sends, (trial_days, dn, i, sends)
            assert may.any()
