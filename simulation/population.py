"""Who arrives and when: latent traits and the true probabilities derived from them (vectorized)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np

from .behaviour import (
    ENGAGEMENT,
    PRICE_SENSITIVITY,
    dormancy_hazard,
    p_active_daily,
    p_cancel_monthly,
    p_convert,
    p_onboarding_step,
    p_signup,
    p_team,
    p_trial,
)
from .catalog import CHANNELS
from .config import SimulatorConfig
from .formats import MS_DAY, MS_HOUR

__all__ = ["Population", "draw_population", "arrival_weights", "CHANNEL_NAMES"]

CHANNEL_NAMES: tuple[str, ...] = tuple(CHANNELS)


@dataclass(frozen=True)
class Population:
    """One row per arriving visitor, sorted by arrival; every array has length ``users``."""

    arrival_ms: np.ndarray  # int64 epoch ms
    channel: np.ndarray  # int8 index into CHANNEL_NAMES
    engagement: np.ndarray
    price_sensitivity: np.ndarray
    analytics_consent: np.ndarray  # bool
    marketing_consent: np.ndarray  # bool
    n_devices: np.ndarray  # int8, 1..3
    guided_onboarding: np.ndarray  # bool: onboarding variant "guided" (else "control")
    p_signup: np.ndarray
    p_onboarding_step: np.ndarray
    p_trial: np.ndarray
    p_team: np.ndarray
    p_convert: np.ndarray
    p_churn_daily: np.ndarray
    p_active_daily: np.ndarray
    p_cancel_monthly: np.ndarray

    def __len__(self) -> int:
        return int(self.arrival_ms.shape[0])


def arrival_weights(start: date, days: int, cfg: SimulatorConfig) -> np.ndarray:
    """Relative arrival intensity of each hour of the window (daily x weekly seasonality)."""
    hourly = np.asarray(cfg.hourly_profile, dtype=np.float64)
    weekday = (start.weekday() + np.arange(days)) % 7
    day_factor = np.where(weekday >= 5, cfg.weekend_factor, 1.0)
    return (day_factor[:, None] * hourly[None, :]).ravel()


def draw_population(users: int, start: date, days: int, *, seed: int, cfg: SimulatorConfig,
                    analytics_consent_rate: float) -> Population:
    """Draw every visitor's arrival time and traits with one seeded generator.

    The draws happen in a fixed order and consent is a threshold on its own uniform, so changing
    ``analytics_consent_rate`` flips consent for some users without moving any other trait.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, start.toordinal(), users, days, 0x5EED]))
    start_ms = (start.toordinal() - date(1970, 1, 1).toordinal()) * MS_DAY

    w = arrival_weights(start, days, cfg)
    hours = rng.choice(w.shape[0], size=users, p=w / w.sum())
    arrival = start_ms + hours.astype(np.int64) * MS_HOUR + rng.integers(0, MS_HOUR, size=users)
    arrival.sort()

    shares = np.array([c[0] for c in CHANNELS.values()])
    channel = rng.choice(len(CHANNEL_NAMES), size=users, p=shares / shares.sum()).astype(np.int8)
    chan_mult = np.array([c[1] for c in CHANNELS.values()])[channel]
    eng = rng.beta(*ENGAGEMENT, size=users)
    ps = rng.beta(*PRICE_SENSITIVITY, size=users)
    analytics = rng.random(users) < analytics_consent_rate
    marketing = rng.random(users) < cfg.marketing_consent_rate
    dev_w = np.asarray(cfg.device_count_weights, dtype=np.float64)
    n_devices = (rng.choice(3, size=users, p=dev_w / dev_w.sum()) + 1).astype(np.int8)
    guided = rng.random(users) < cfg.guided_onboarding_share

    return Population(
        arrival_ms=arrival,
        channel=channel,
        engagement=eng,
        price_sensitivity=ps,
        analytics_consent=analytics,
        marketing_consent=marketing,
        n_devices=n_devices,
        guided_onboarding=guided,
        p_signup=p_signup(cfg, eng, chan_mult),
        p_onboarding_step=p_onboarding_step(cfg, eng, cfg.onboarding_step_lift["guided"] * guided),
        p_trial=p_trial(cfg, eng, ps),
        p_team=p_team(cfg, ps),
        p_convert=p_convert(cfg, eng, ps),
        p_churn_daily=dormancy_hazard(cfg, eng),  # going dormant (not cancelling: p_cancel_monthly)
        p_active_daily=p_active_daily(cfg, eng),
        p_cancel_monthly=p_cancel_monthly(cfg, ps),
    )
