"""What the closed-loop simulator records as true: per user and day, per delivered message, per day, and
their summary (:func:`truth_summary`), under ``<root>/simulator/closed_loop/truth/``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import polars as pl

from .closed_loop_config import ClosedLoopConfig, PaywallEffect

__all__ = ["MESSAGE_SCHEMA", "DayTruth", "closed_loop_dir", "read_message_truth", "read_truth", "truth_summary"]


def closed_loop_dir(root: str | os.PathLike[str]) -> Path:
    """``<root>/simulator/closed_loop``: the simulator's state and truth."""
    return Path(os.fspath(root)) / "simulator" / "closed_loop"


@dataclass(frozen=True)
class DayTruth:
    """What truly happened on one day.

    Attributes:
        day: the simulated day.
        users: one row per signed-up user at the end of the day (see ``truth/day=…parquet``).
        messages: one row per message delivered today (consent violations and unknown recipients included).
        arrivals: anonymous visitors who arrived.
        signups: of them, the ones who signed up.
        events_written: landed lines (all valid against the tracking plan).
        events_by_name: landed lines per event name.
        no_analytics_consent: of the landed lines, those with ``consent.analytics = false``.
        unknown_flag_values: flag evaluations that served a value the product does not know (-> control).
        files_written: landing files published.
        elapsed_s: wall time of the step.
    """

    day: date
    users: pl.DataFrame
    messages: pl.DataFrame
    arrivals: int
    signups: int
    events_written: int
    events_by_name: dict[str, int]
    no_analytics_consent: int
    unknown_flag_values: int
    files_written: int
    elapsed_s: float


MESSAGE_SCHEMA = {
    "day": pl.Date(), "message_key": pl.String(), "person_id": pl.String(), "template": pl.String(),
    "sent_at": pl.Datetime("ms", "UTC"), "user_index": pl.Int64(), "known_recipient": pl.Boolean(),
    "marketing_consent": pl.Boolean(), "consent_violation": pl.Boolean(), "status_at_delivery": pl.String(),
    "effective": pl.Boolean(), "opened": pl.Boolean(), "clicked": pl.Boolean(),
}


def read_truth(root: str | os.PathLike[str]) -> pl.DataFrame:
    """Every per-user truth row written so far (``truth/day=*.parquet``), ordered by day and user."""
    files = sorted((closed_loop_dir(root) / "truth").glob("day=*.parquet"))
    if not files:
        return pl.DataFrame()
    return pl.concat([pl.read_parquet(f) for f in files], how="vertical").sort("day", "user_index")


def read_message_truth(root: str | os.PathLike[str]) -> pl.DataFrame:
    """Every delivered message so far (``truth/messages/day=*.parquet``)."""
    files = sorted((closed_loop_dir(root) / "truth" / "messages").glob("day=*.parquet"))
    if not files:
        return pl.DataFrame(schema=MESSAGE_SCHEMA)
    return pl.concat([pl.read_parquet(f) for f in files], how="vertical")


def _rate(num: float, den: float) -> float | None:
    return num / den if den else None


def _mean(values: pl.Series) -> float | None:
    """The mean of a float column (None when empty): each user's true probability, averaged."""
    return float(values.sum()) / values.len() if values.len() else None


def truth_summary(root: str | os.PathLike[str]) -> dict[str, Any]:
    """Aggregate the recorded truth of every simulated day.

    Returns a dict with ``days``, ``arrivals``, ``signups``, ``events``; ``onboarding`` (per variant:
    exposed users, completions, observed and true completion rate); ``trial_nudge`` (trials that
    ended with / without a nudge delivered during the trial, their conversion rates, the observed
    difference, the mean true probability lift of the nudged, and the configured lift); ``paywall``
    (per variant: exposures, conversions, conversion-day revenue per exposed user, expected revenue
    per exposed user, revenue to date per exposed user, the observed and the true relative revenue
    vs control); ``retention_offer``; ``messages`` (delivered per template, consent violations,
    unknown recipients) and ``true_effects`` (:meth:`ClosedLoopConfig.true_effects`).
    """
    base = closed_loop_dir(root)
    cursor = orjson.loads((base / "cursor.json").read_bytes()) if (base / "cursor.json").exists() else None
    cfg = ClosedLoopConfig.from_json(cursor["config"]) if cursor else ClosedLoopConfig()
    truth = read_truth(root)
    msgs = read_message_truth(root)
    days = [orjson.loads(p.read_bytes()) for p in sorted((base / "truth").glob("day=*.json"))]
    out: dict[str, Any] = {
        "days": len(days),
        "first_day": days[0]["day"] if days else None,
        "last_day": days[-1]["day"] if days else None,
        "arrivals": sum(d["arrivals"] for d in days),
        "signups": sum(d["signups"] for d in days),
        "events": sum(d["events_written"] for d in days),
        "true_effects": cfg.true_effects(),
    }
    if truth.height == 0:
        return out
    last = truth.filter(pl.col("day") == pl.col("day").max())
    onboarding = {}
    for variant in sorted(set(cfg.onboarding_step_lift) | set(last["onboarding_variant"].unique().to_list())):
        rows = last.filter(pl.col("onboarding_variant") == variant)
        done = int(rows["onboarding_completed"].sum())
        onboarding[variant] = {"exposed": rows.height, "completed": done, "completion_rate": _rate(done, rows.height),
                               "true_completion_rate": _mean(rows["p_onboarding_complete"])}
    out["onboarding"] = onboarding

    ended = truth.filter(pl.col("paywall_exposed_today"))
    nudge: dict[str, Any] = {"true_lift": cfg.trial_nudge_lift}
    for label, flag in (("nudged", True), ("not_nudged", False)):
        rows = ended.filter(pl.col("nudged") == flag)
        conv = int(rows["converted_today"].sum())
        nudge[f"trials_ended_{label}"] = rows.height
        nudge[f"conversion_rate_{label}"] = _rate(conv, rows.height)
    a, b = nudge["conversion_rate_nudged"], nudge["conversion_rate_not_nudged"]
    nudge["observed_lift"] = a - b if a is not None and b is not None else None
    nudged = ended.filter(pl.col("nudged"))
    nudge["mean_true_probability_lift"] = None
    if nudged.height:
        lift = (nudged["p_convert_control"] - nudged["p_convert_base"]).mean()
        assert isinstance(lift, float)  # the mean of a float column with rows
        nudge["mean_true_probability_lift"] = lift
    out["trial_nudge"] = nudge

    paywall: dict[str, Any] = {}
    to_date = last.filter(pl.col("paywall_variant").is_not_null())
    for variant in sorted(set(ended["paywall_variant"].to_list())):
        rows = ended.filter(pl.col("paywall_variant") == variant)
        n = rows.height
        effect = cfg.paywall_variants.get(variant, PaywallEffect())
        paywall[variant] = {
            "exposed": n,
            "converted": int(rows["converted_today"].sum()),
            "conversion_rate": _rate(int(rows["converted_today"].sum()), n),
            "revenue_per_exposed": _rate(float(rows["revenue_today"].sum()), n),
            "expected_revenue_per_exposed": _rate(float(rows["expected_revenue"].sum()), n),
            "revenue_to_date_per_exposed": _rate(
                float(to_date.filter(pl.col("paywall_variant") == variant)["revenue_to_date"].sum()), n),
            "true_relative_revenue_per_exposed": effect.relative_revenue_per_exposed,
        }
    control = paywall.get("control", {}).get("revenue_per_exposed")
    for stats in paywall.values():
        rpe = stats["revenue_per_exposed"]
        stats["observed_relative_revenue_per_exposed"] = rpe / control - 1.0 if control and rpe is not None else None
    out["paywall"] = paywall

    offers = truth.filter(pl.col("retention_offer_delivered_today"))
    paying_days = truth.filter(pl.col("churn_hazard").is_not_null())
    out["retention_offer"] = {
        "delivered": offers.height,
        "users": offers["user_id"].n_unique(),
        "paying_user_days_with_offer": int(paying_days["retention_offer_active"].sum()),
        "paying_user_days_without_offer": int((~paying_days["retention_offer_active"]).sum()),
        "churned_with_offer": int(paying_days.filter(pl.col("retention_offer_active"))["churned_today"].sum()),
        "churned_without_offer": int(paying_days.filter(~pl.col("retention_offer_active"))["churned_today"].sum()),
    }
    out["messages"] = {
        "delivered": {t: n for t, n in msgs.group_by("template").len().sort("template").iter_rows()},
        "consent_violations": int(msgs["consent_violation"].sum()),
        "consent_violation_users": msgs.filter(pl.col("consent_violation"))["person_id"].n_unique(),
        "unknown_recipients": int((~msgs["known_recipient"]).sum()),
    }
    return out
