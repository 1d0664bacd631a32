"""Behaviour rules both simulators apply, each written once (the parameters live in :class:`ProductModel`).

``simulate`` (whole journeys, one per-user generator) and ``ClosedLoopSimulator`` (day-stepped,
keyed draws) call these functions with their own uniforms, so a rule, its parameter and its meaning
are the same in both. Each function takes scalars or numpy arrays.

* **Traits**: engagement ``e ~ Beta(2.2, 2.8)`` (mean 0.44) and price sensitivity ``ps ~ Beta(2, 2)``.
* **Onboarding**: each of the steps is completed with ``p_onboarding_step`` (engagement plus the
  variant's lift), in order, stopping at the first one missed; completing all of them is
  ``p_onboarding_step ** steps``.
* **Funnel**: a visitor signs up with ``p_signup`` (channel, engagement); a signed-up user starts a
  trial with ``p_trial`` (engagement, price sensitivity), at sign-up for 35% of them, else 0.3–4
  days later; picks the team plan with ``p_team``; converts with ``p_convert``, a share
  (``early_conversion_share``) of converters before the trial ends, the others when it ends; a
  paying user cancels with ``p_cancel_monthly`` per billing period.
* **Dormancy**: a signed-up user stops using the product with a daily hazard that falls with
  engagement; paying users go dormant less often. A dormant user has no more sessions, still gets
  email and opens it less often. (Cancelling a subscription is a separate event and hazard.)
* **Activation**: a known user's daily activity probability is ``p_active_daily`` (engagement) times
  ``onboarded_activity_multiplier`` once every onboarding step is completed, times the status's
  ``status_activity_multiplier`` (free, trial, expired, paying, churned), capped at 0.97.
* **Weekend activity**: on Saturdays and Sundays (UTC) a known user is active less often.
* **Payment failures**: a renewal fails with a fixed probability; the retry, ``PAYMENT_RETRY_DAYS``
  later, succeeds and the billing dates stay where they were.
* **Sessions**: an active day has ``1 + Poisson(extra_sessions_per_day · e)`` sessions, a session
  ``1 + Poisson(actions_per_session · (0.4 + 1.2 e))`` in-app actions (the first is always there).
* **Visitors**: arrivals follow ``hourly_profile``, ``weekend_factor`` times as many on weekends; a
  person has 1–3 devices (``device_count_weights``), arrives on the first (desktop for
  ``FIRST_DEVICE_DESKTOP_SHARE``, else a phone or tablet; the others of the other kind) and uses it
  for ``PRIMARY_DEVICE_SHARE`` of their sessions; a new device logs in (``user_logged_in``).
  ``first_visit_signup_share`` of the sign-ups sign up on the first visit, the others
  ``signup_delay_ms`` later, after anonymous return visits (``return_visits_mean``, within
  ``RETURN_VISIT_WINDOW_DAYS``); a delayed trial starts at the first session after it is due.
* **Consent changes**: ``consent_change_rate`` of the signed-up users flip their marketing consent at
  their first session after ``consent_change_delay_ms``.
* **Lifecycle email** (:func:`lifecycle_sends`): welcome, an onboarding nudge to those who did not
  finish onboarding, a trial-ending reminder, a win-back a week after going dormant and the Tuesday
  newsletter; the last two only with marketing consent.
* **Email opens**: the probability that a delivered email is opened scales with engagement
  (``0.5 + e``) and drops for dormant users.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from .formats import MS_DAY, MS_HOUR, MS_MINUTE

if TYPE_CHECKING:
    from .config import ProductModel

__all__ = [
    "CONSENT_CHANGE_WINDOW_DAYS", "DORMANT_OPEN_FACTOR", "ENGAGEMENT", "FIRST_DEVICE_DESKTOP_SHARE",
    "FIRST_SESSION_ACTIONS_MEAN", "MARKETING_CAMPAIGNS", "PAYMENT_RETRY_DAYS", "PRICE_SENSITIVITY",
    "PRIMARY_DEVICE_SHARE", "RETURN_VISIT_WINDOW_DAYS", "SESSION_GAP_MS", "SIGNUP_DELAY_MEAN_DAYS",
    "TRIAL_AT_SIGNUP_SHARE", "TRIAL_DELAY_DAYS", "actions_mean", "activated", "arrival_factor", "cancel_daily_hazard",
    "completion_rate", "consent_change_delay_ms", "dormancy_hazard", "engagement_from_uniform", "extra_sessions_mean",
    "is_weekend", "late_conversion_probability", "lifecycle_may_send", "lifecycle_sends", "open_delay_ms",
    "open_probability", "p_active_daily", "p_active_today", "p_cancel_monthly", "p_convert", "p_onboarding_step",
    "p_signup", "p_team", "p_trial", "price_sensitivity_from_uniform", "return_visit_ms", "return_visits_mean",
    "signup_delay_ms", "trial_delay_ms", "visit_pages_mean", "weekend_factor",
]

ENGAGEMENT = (2.2, 2.8)
"""Beta distribution parameters of engagement."""
PRICE_SENSITIVITY = (2.0, 2.0)
"""Beta distribution parameters of price sensitivity."""
TRIAL_AT_SIGNUP_SHARE = 0.35
"""Of the users who start a trial, the share who start it at sign-up."""
TRIAL_DELAY_DAYS = (0.3, 4.0)
"""The others start it this many days after sign-up (uniform)."""

PAYMENT_RETRY_DAYS = 3
"""Days between a failed renewal and its (successful) retry."""
DORMANT_OPEN_FACTOR = 0.4
"""A dormant user opens email this many times as often as an active one."""

PRIMARY_DEVICE_SHARE = 0.55
"""Share of a known user's sessions on the device they arrived on (the others: one of their other devices)."""
FIRST_DEVICE_DESKTOP_SHARE = 0.6
"""Share of visitors who arrive on a desktop (the others on a phone or tablet)."""
RETURN_VISIT_WINDOW_DAYS = 6
"""Anonymous return visits fall within this many days after the first visit (from 2 hours on)."""
SIGNUP_DELAY_MEAN_DAYS = 1.5
"""A sign-up after the first visit comes 2 hours plus an exponential delay of this mean later."""
CONSENT_CHANGE_WINDOW_DAYS = 10
"""A consent change falls due 1 hour to this many days after sign-up."""
MARKETING_CAMPAIGNS = ("newsletter", "winback")
"""Lifecycle campaigns sent only to users with marketing consent."""


def _exponential(u: float, mean: float) -> float:
    return -math.log(1.0 - u) * mean


def arrival_factor(cfg: ProductModel, day_number: int) -> float:
    """What the arrival intensity of that day is multiplied by (``weekend_factor`` on Sat/Sun)."""
    return cfg.weekend_factor if is_weekend(day_number) else 1.0


def signup_delay_ms(cfg: ProductModel, first_u: float, delay_u: float) -> int:
    """When a visitor who signs up does so, after the first visit, from two uniforms: 0 (on the first
    visit, ``first_visit_signup_share``), else 2 hours plus an exponential delay."""
    if first_u < cfg.first_visit_signup_share:
        return 0
    return 2 * MS_HOUR + int(_exponential(delay_u, SIGNUP_DELAY_MEAN_DAYS * MS_DAY))


def return_visits_mean(cfg: ProductModel, engagement: Any) -> Any:
    """Mean number of anonymous return visits of a visitor (those before their sign-up happen)."""
    return cfg.return_visits_mean * (0.4 + 1.2 * engagement)


SESSION_GAP_MS = 15 * MS_MINUTE
"""A known user's next session starts at least this long after the last one's last event."""
FIRST_SESSION_ACTIONS_MEAN = 2.0
"""Mean number of in-app actions in the session of the sign-up."""


def visit_pages_mean(engagement: Any) -> Any:
    """Mean number of marketing pages of an anonymous visit beyond the first (at most 7 more)."""
    return 1.0 + 2.0 * engagement


def return_visit_ms(u: float) -> int:
    """A return visit's time after the first visit, from a uniform."""
    return 2 * MS_HOUR + int(u * RETURN_VISIT_WINDOW_DAYS * MS_DAY)


def consent_change_delay_ms(u: float) -> int:
    """When, after sign-up, a user who will change their marketing consent is due to, from a uniform."""
    return MS_HOUR + int(u * CONSENT_CHANGE_WINDOW_DAYS * MS_DAY)


def open_delay_ms(u: float) -> int:
    """Time from an email's delivery to its opening, from a uniform."""
    return MS_MINUTE + int(_exponential(u, 2 * MS_HOUR))


def lifecycle_sends(cfg: ProductModel, *, signup_ms: int, onboarded: bool, trial_ms: int | None,
                    converted_ms: int | None, dormant_ms: int | None, welcome_u: float, nudge_u: float,
                    since_ms: int, until_ms: int) -> list[tuple[str, int]]:
    """The product's own email to one signed-up user that is sent in ``[since_ms, until_ms)``, as
    ``(campaign, ms)`` in schedule order: welcome 1–10 minutes after sign-up; an onboarding nudge a day
    later to those who did not complete it; a reminder 3 days before the trial ends unless converted by
    then; a win-back 7 days after going dormant; the newsletter every Tuesday at 15:00 UTC. The caller
    checks marketing consent for :data:`MARKETING_CAMPAIGNS`."""
    sends = [("welcome", signup_ms + MS_MINUTE + int(welcome_u * 9 * MS_MINUTE))]
    if not onboarded:
        sends.append(("onboarding_nudge", signup_ms + MS_DAY + int(nudge_u * 3 * MS_HOUR)))
    if trial_ms is not None:
        reminder = trial_ms + max(0, cfg.trial_days - 3) * MS_DAY
        if converted_ms is None or reminder < converted_ms:
            sends.append(("trial_ending", reminder))
    if dormant_ms is not None:
        sends.append(("winback", dormant_ms + 7 * MS_DAY + 10 * MS_HOUR))
    day = max(signup_ms, since_ms) // MS_DAY
    t = (day + (1 - (day + 3) % 7) % 7) * MS_DAY + 15 * MS_HOUR  # Tuesday (1970-01-01 was a Thursday)
    while t < until_ms:
        if t > signup_ms:
            sends.append(("newsletter", t))
        t += 7 * MS_DAY
    return [(c, ts) for c, ts in sends if since_ms <= ts < until_ms]


def lifecycle_may_send(cfg: ProductModel, day_number: int, *, signup_day: Any, trial_start_day: Any,
                       dormant_day: Any) -> Any:
    """Which users :func:`lifecycle_sends` may send to on ``day_number`` (a superset, by a day's margin:
    the caller need not evaluate the schedule of everyone else). Day arrays use -1 for "never"."""
    if (day_number + 3) % 7 == 1:  # a Tuesday (1970-01-01 was a Thursday): the newsletter goes to everyone
        return np.ones(len(signup_day), dtype=bool)
    reminder_day = np.where(trial_start_day >= 0, trial_start_day + max(0, cfg.trial_days - 3), -10)
    winback_day = np.where(dormant_day >= 0, dormant_day + 7, -10)
    return ((signup_day >= day_number - 2) | ((reminder_day >= day_number - 1) & (reminder_day <= day_number))
            | ((winback_day >= day_number - 1) & (winback_day <= day_number)))


def dormancy_hazard(cfg: ProductModel, engagement: Any, *, paying: Any = False) -> Any:
    """Daily probability that a user of ``engagement`` goes dormant (``paying`` users: times
    ``cfg.paying_dormancy_factor``)."""
    base = np.clip(cfg.dormancy_daily_base * (1.6 - 1.4 * engagement), 0.002, 0.5)
    return base * np.where(paying, cfg.paying_dormancy_factor, 1.0)


def is_weekend(day_number: Any) -> Any:
    """Whether the day (days since 1970-01-01, a Thursday) is a Saturday or Sunday (UTC)."""
    return (day_number + 3) % 7 >= 5


def weekend_factor(cfg: ProductModel, day_number: int) -> float:
    """What a known user's daily activity probability is multiplied by on that day."""
    return cfg.weekend_activity_factor if is_weekend(day_number) else 1.0


def extra_sessions_mean(cfg: ProductModel, engagement: Any) -> Any:
    """Mean number of sessions beyond the first on an active day."""
    return cfg.extra_sessions_per_day * engagement


def actions_mean(cfg: ProductModel, engagement: Any) -> Any:
    """Mean number of in-app actions beyond the first in a session."""
    return cfg.actions_per_session * (0.4 + 1.2 * engagement)


def open_probability(cfg: ProductModel, engagement: Any, dormant: Any) -> Any:
    """Probability that a delivered email is opened (consent is the caller's check)."""
    factor = np.where(dormant, DORMANT_OPEN_FACTOR, 1.0) if isinstance(dormant, np.ndarray) else (
        DORMANT_OPEN_FACTOR if dormant else 1.0)
    return cfg.email_open_rate * (0.5 + engagement) * factor


def _clip(x: Any, lo: float = 0.01, hi: float = 0.95) -> Any:
    return np.clip(x, lo, hi)


def engagement_from_uniform(u: Any) -> Any:
    """Engagement from a uniform on [0, 1) (inverse CDF; the event simulator draws the same Beta directly)."""
    from scipy.special import betaincinv

    return betaincinv(*ENGAGEMENT, u)


def price_sensitivity_from_uniform(u: Any) -> Any:
    """Price sensitivity from a uniform on [0, 1) (inverse CDF)."""
    from scipy.special import betaincinv

    return betaincinv(*PRICE_SENSITIVITY, u)


def p_signup(cfg: ProductModel, engagement: Any, channel_multiplier: Any) -> Any:
    """Probability that a visitor signs up (over their visits)."""
    return _clip(cfg.signup_base * channel_multiplier * (0.45 + 1.2 * engagement))


def p_trial(cfg: ProductModel, engagement: Any, price_sensitivity: Any) -> Any:
    """Probability that a signed-up user starts a trial."""
    return _clip(cfg.trial_base * (0.6 + 0.9 * engagement) * (1.25 - 0.5 * price_sensitivity))


def trial_delay_ms(at_signup_u: float, delay_u: float, ms_per_day: int) -> int:
    """When the trial starts after sign-up, from two uniforms: 0, or ``TRIAL_DELAY_DAYS`` uniform."""
    if at_signup_u < TRIAL_AT_SIGNUP_SHARE:
        return 0
    lo, hi = TRIAL_DELAY_DAYS
    return int((lo + (hi - lo) * delay_u) * ms_per_day)


def p_team(cfg: ProductModel, price_sensitivity: Any) -> Any:
    """Probability that a trial is on the team plan (else pro)."""
    return _clip(cfg.trial_team_share * (1.45 - 0.9 * price_sensitivity))


def p_convert(cfg: ProductModel, engagement: Any, price_sensitivity: Any) -> Any:
    """Probability that a trial converts to paying (early or at its end)."""
    return _clip(cfg.convert_base * (0.5 + 1.1 * engagement) * (1.35 - 0.8 * price_sensitivity))


def late_conversion_probability(cfg: ProductModel, p: Any) -> Any:
    """Probability of converting when the trial ends, given no early conversion: with the early ones
    (``p · early_conversion_share``) it makes ``p`` in all."""
    s = cfg.early_conversion_share
    return p * (1.0 - s) / (1.0 - p * s)


def p_active_daily(cfg: ProductModel, engagement: Any) -> Any:
    """Probability that a known, awake user is active on a weekday."""
    return _clip(cfg.active_daily_base * (0.55 + 0.9 * engagement), 0.05, 0.98)


def p_active_today(cfg: ProductModel, engagement: Any, *, onboarded: Any, status: Any, day_number: int) -> Any:
    """Probability that a known, awake user is active on ``day_number``: activation (completed onboarding,
    the status, capped at 0.97), then the weekend factor. ``status`` is one status or an array of them."""
    return activated(cfg, p_active_daily(cfg, engagement), onboarded=onboarded, status=status, day_number=day_number)


def activated(cfg: ProductModel, p_active: Any, *, onboarded: Any, status: Any, day_number: int) -> Any:
    """:func:`p_active_today` from the user's ``p_active_daily`` (scalars in plain Python: the event
    simulator calls it once per user and day)."""
    mult = cfg.status_activity_multiplier
    if isinstance(status, np.ndarray):
        status_mult = np.array([mult[st] for st in status], dtype=np.float64)
        p = p_active * status_mult * np.where(onboarded, cfg.onboarded_activity_multiplier, 1.0)
        return np.minimum(p, 0.97) * weekend_factor(cfg, day_number)
    p = p_active * mult[status] * (cfg.onboarded_activity_multiplier if onboarded else 1.0)
    return min(p, 0.97) * weekend_factor(cfg, day_number)


def p_cancel_monthly(cfg: ProductModel, price_sensitivity: Any) -> Any:
    """Probability that a paying user cancels within a billing period."""
    return _clip(cfg.cancel_monthly_base * (0.5 + 1.2 * price_sensitivity), 0.005, 0.5)


def cancel_daily_hazard(cfg: ProductModel, p_monthly: Any) -> Any:
    """The daily hazard that gives ``p_monthly`` over a billing period."""
    return 1.0 - (1.0 - p_monthly) ** (1.0 / cfg.billing_period_days)


def p_onboarding_step(cfg: ProductModel, engagement: Any, lift: Any) -> Any:
    """Probability of completing each onboarding step, ``lift`` the variant's (and context's) additive effect."""
    return _clip(cfg.onboarding_base + 0.35 * (engagement - 0.44) + lift, 0.05, 0.98)


def completion_rate(cfg: ProductModel, lift: float, steps: int) -> float:
    """Population share completing all ``steps`` under ``lift``: the mean of ``p_onboarding_step ** steps``
    over the engagement distribution (midpoint rule on 20,000 equal-probability slices)."""
    e = engagement_from_uniform((np.arange(20_000) + 0.5) / 20_000)
    return float(np.mean(p_onboarding_step(cfg, e, lift) ** steps))
