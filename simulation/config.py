"""Knobs of the product model: seasonality, funnel rates, prices, delivery and faults."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from lake.errors import ConfigError

__all__ = ["ProductModel", "SimulatorConfig", "FAULT_KINDS", "NO_CONSENT", "STATUSES", "default_hourly_profile"]

# Collector faults, at most one per line. `duplicate` and `late` keep the event valid.
FAULT_KINDS: tuple[str, ...] = (
    "duplicate",
    "late",
    "malformed_json",
    "unplanned_event",
    "required_missing",
    "datatype_mismatch",
    "invalid_timestamp",
    "missing_event_id",
    "unexpected_property",
)
# Lines of users who did not grant analytics consent (not a collector fault, counted apart).
NO_CONSENT = "no_analytics_consent"


def default_hourly_profile() -> tuple[float, ...]:
    """Relative arrival intensity per UTC hour: a night floor and a bump over working hours."""
    return tuple(round(0.22 + 0.78 * math.exp(-0.5 * ((h - 14.0) / 3.6) ** 2), 4) for h in range(24))


def _default_fault_weights() -> dict[str, float]:
    return {
        "duplicate": 0.20,
        "late": 0.20,
        "malformed_json": 0.10,
        "unplanned_event": 0.08,
        "required_missing": 0.10,
        "datatype_mismatch": 0.10,
        "invalid_timestamp": 0.08,
        "missing_event_id": 0.06,
        "unexpected_property": 0.08,
    }


STATUSES = ("free", "trial", "expired", "paying", "churned")
"""A signed-up user's status: no trial yet, in trial, trial ended unpaid, paying, subscription cancelled."""


def _default_status_activity() -> dict[str, float]:
    return {"free": 1.0, "trial": 1.3, "expired": 0.7, "paying": 1.4, "churned": 0.3}


def _default_step_lift() -> dict[str, float]:
    return {"control": 0.0, "guided": 0.06, "checklist": 0.03}


@dataclass(frozen=True, kw_only=True)
class ProductModel:
    """The product's parameters, one source for each: both the event simulator
    (:class:`SimulatorConfig`) and the closed-loop simulator (``ClosedLoopConfig``) extend it, so
    the same product has the same visitors (arrival seasonality, devices, return visits before
    sign-up), funnel, prices, trial, billing, consent and its changes, lifecycle email, activation,
    dormancy, sessions and failed renewals in both (the rules they share are :mod:`simulation.behaviour`).

    Parameters a model adds on its own are those only it simulates: in the event stream collector
    faults and a fixed onboarding experiment; in the closed loop the interventions (flags, messages)
    and their true effects.
    """

    # Arrivals: intensity per UTC hour of day, and the weekend multiplier (~35% fewer arrivals).
    hourly_profile: tuple[float, ...] = field(default_factory=default_hourly_profile)
    weekend_factor: float = 0.65
    # Visitors (simulation.behaviour): devices, anonymous return visits before sign-up, consent changes.
    device_count_weights: tuple[float, float, float] = (0.60, 0.30, 0.10)  # a person has 1, 2 or 3 devices
    first_visit_signup_share: float = 0.6  # of sign-ups, the share that sign up on the first visit
    return_visits_mean: float = 1.4  # anonymous return visits of a typical visitor
    consent_change_rate: float = 0.03  # signed-up users who later flip their marketing consent
    marketing_consent_rate: float = 0.60
    plan_prices: Mapping[str, float] = field(default_factory=lambda: {"pro": 29.0, "team": 99.0})
    currency: str = "USD"
    trial_days: int = 14
    billing_period_days: int = 30
    email_open_rate: float = 0.35  # population mean share of delivered emails opened (consenting users)
    email_click_rate: float = 0.30  # share of opened emails clicked
    feature_share: float = 0.62  # share of in-app actions that are feature_used (rest: page_viewed)
    # The funnel both simulators apply (simulation.behaviour): base rates, scaled per user by engagement e
    # (Beta(2.2, 2.8)) and price sensitivity ps (Beta(2, 2)).
    onboarding_base: float = 0.62  # p_onboarding_step = onboarding_base + 0.35 (e - 0.44) + lift[variant]
    onboarding_step_lift: Mapping[str, float] = field(default_factory=_default_step_lift)  # per onboarding variant
    signup_base: float = 0.42  # p_signup = signup_base * channel * (0.45 + 1.2 e)
    trial_base: float = 0.42  # p_trial = trial_base * (0.6 + 0.9 e) * (1.25 - 0.5 ps)
    trial_team_share: float = 0.28  # p_team = trial_team_share * (1.45 - 0.9 ps)
    convert_base: float = 0.45  # p_convert = convert_base * (0.5 + 1.1 e) * (1.35 - 0.8 ps)
    early_conversion_share: float = 0.3  # converters who pay before the trial ends
    active_daily_base: float = 0.75  # p_active_daily = active_daily_base * (0.55 + 0.9 e)
    cancel_monthly_base: float = 0.06  # p_cancel_monthly = cancel_monthly_base * (0.5 + 1.2 ps), per billing period
    # Lifecycle rules both simulators apply (simulation.behaviour): dormancy, weekend activity, failed renewals.
    dormancy_daily_base: float = 0.07  # daily hazard of going dormant, scaled by engagement
    paying_dormancy_factor: float = 0.3  # paying users go dormant this many times as often
    weekend_activity_factor: float = 0.5  # multiplies a known user's daily activity probability on Sat/Sun
    payment_failure_rate: float = 0.05  # share of renewals that fail (the retry 3 days later succeeds)
    # Activation (simulation.behaviour): completing onboarding and the status multiply daily activity (capped).
    onboarded_activity_multiplier: float = 1.6
    status_activity_multiplier: Mapping[str, float] = field(default_factory=_default_status_activity)
    extra_sessions_per_day: float = 4.0  # sessions beyond the first on an active day, times engagement
    actions_per_session: float = 20.5  # in-app actions beyond the first in a session, times (0.4 + 1.2 e)
    max_delivery_delay_ms: int = 5_000  # collector delivery delay (received_at - timestamp), at most
    # Files.
    max_lines_per_file: int = 10_000
    max_buffered_bytes: int = 16 * 1024 * 1024

    def _check_product(self, name: str) -> None:
        for attr in ("marketing_consent_rate", "email_open_rate", "email_click_rate", "feature_share",
                     "onboarding_base", "signup_base", "trial_base", "trial_team_share", "convert_base",
                     "early_conversion_share", "active_daily_base", "cancel_monthly_base", "dormancy_daily_base",
                     "paying_dormancy_factor", "weekend_activity_factor", "payment_failure_rate", "weekend_factor",
                     "first_visit_signup_share", "consent_change_rate"):
            value = getattr(self, attr)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name}.{attr}", f"is {value!r}, outside [0, 1]", "Use a probability.")
        if self.onboarding_step_lift.get("control") != 0.0 or any(
                not -1.0 <= v <= 1.0 for v in self.onboarding_step_lift.values()):
            raise ConfigError(f"{name}.onboarding_step_lift", "needs 'control' at 0.0 and lifts within [-1, 1]",
                              "Map each onboarding variant to its additive effect on the step probability.")
        if len(self.hourly_profile) != 24 or min(self.hourly_profile) < 0 or sum(self.hourly_profile) <= 0:
            raise ConfigError(f"{name}.hourly_profile", "needs 24 non-negative weights, not all zero",
                              "Pass one weight per UTC hour.")
        if len(self.device_count_weights) != 3 or min(self.device_count_weights) < 0 or sum(
                self.device_count_weights) <= 0:
            raise ConfigError(f"{name}.device_count_weights", "needs 3 non-negative weights (1, 2, 3 devices)",
                              "Pass one weight per device count.")
        if not 0.0 <= self.return_visits_mean <= 100.0:
            raise ConfigError(f"{name}.return_visits_mean", f"is {self.return_visits_mean!r}",
                              "Use a mean from 0 to 100.")
        if set(self.status_activity_multiplier) != set(STATUSES) or any(
                not 0.0 <= v <= 10.0 for v in self.status_activity_multiplier.values()):
            raise ConfigError(f"{name}.status_activity_multiplier", f"needs exactly the statuses {STATUSES}, "
                              "each with a multiplier from 0 to 10", "Give a multiplier per status.")
        if not 0.0 <= self.onboarded_activity_multiplier <= 10.0:
            raise ConfigError(f"{name}.onboarded_activity_multiplier", f"is {self.onboarded_activity_multiplier!r}",
                              "Use a multiplier of daily activity from 0 to 10.")
        if set(self.plan_prices) != {"pro", "team"}:
            raise ConfigError(f"{name}.plan_prices", "needs exactly the plans 'pro' and 'team'",
                              "Give a price for each plan of the tracking plan.")
        for attr in ("billing_period_days", "max_lines_per_file", "max_buffered_bytes"):
            if not isinstance(getattr(self, attr), int) or getattr(self, attr) < 1:
                raise ConfigError(f"{name}.{attr}", f"is {getattr(self, attr)!r}", "Use an integer >= 1.")
        for attr in ("extra_sessions_per_day", "actions_per_session"):
            if not 0.0 <= getattr(self, attr) <= 1_000.0:
                raise ConfigError(f"{name}.{attr}", f"is {getattr(self, attr)!r}", "Use a mean from 0 to 1000.")
        if not isinstance(self.max_delivery_delay_ms, int) or self.max_delivery_delay_ms < 0:
            raise ConfigError(f"{name}.max_delivery_delay_ms", f"is {self.max_delivery_delay_ms!r}",
                              "Use a non-negative integer.")
        if not isinstance(self.trial_days, int) or not 1 <= self.trial_days <= 60:
            raise ConfigError(f"{name}.trial_days", f"is {self.trial_days!r}", "The tracking plan allows 1..60.")


@dataclass(frozen=True, kw_only=True)
class SimulatorConfig(ProductModel):
    """Every tunable of the simulator; the defaults give ~50 lines per arriving visitor over 7 days.

    Rates that depend on a user are *base* rates: population.py scales them by the user's
    latent traits (engagement, price sensitivity, channel) and stores the resulting true
    probabilities in the ground truth.
    """

    # The event stream's onboarding experiment (the closed loop's comes from the flags document).
    guided_onboarding_share: float = 0.5  # share of users shown the "guided" onboarding variant
    # Faults.
    fault_weights: Mapping[str, float] = field(default_factory=_default_fault_weights)
    # Files.
    truth_row_group: int = 50_000
    tracking_plan: str | os.PathLike[str] | None = None  # default: $GROWTHLAKE_TRACKING_PLAN or lake's plan

    def __post_init__(self) -> None:
        self._check_product("SimulatorConfig")
        if "guided" not in self.onboarding_step_lift:
            raise ConfigError("SimulatorConfig.onboarding_step_lift", "needs the 'guided' variant",
                              "The event stream shows 'guided' to guided_onboarding_share of its users.")
        unknown = set(self.fault_weights) - set(FAULT_KINDS)
        if unknown or sum(self.fault_weights.values()) <= 0 or min(self.fault_weights.values()) < 0:
            raise ConfigError("SimulatorConfig.fault_weights",
                              f"must map kinds of {FAULT_KINDS} to non-negative weights (unknown: {sorted(unknown)})",
                              "Fix the mapping.")
        for name in ("guided_onboarding_share",):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"SimulatorConfig.{name}", f"is {value}, outside [0, 1]", "Use a probability.")
        if self.max_lines_per_file < 1 or self.max_buffered_bytes < 1 or self.trial_days < 1:
            raise ConfigError("SimulatorConfig", "max_lines_per_file, max_buffered_bytes and trial_days must be >= 1",
                              "Use positive sizes.")
