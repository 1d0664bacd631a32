"""The closed-loop simulator's knobs: interventions and their true effects, on top of :class:`ProductModel`.

The product's behaviour is :class:`~simulation.config.ProductModel` with the rules of
:mod:`simulation.behaviour`, the same as the event simulator's; :class:`ClosedLoopConfig` adds what only
the closed loop simulates (flags, messages and their true effects) and
:meth:`ClosedLoopConfig.true_effects` says what each intervention truly does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from lake.errors import ConfigError

from .behaviour import cancel_daily_hazard, completion_rate, p_cancel_monthly
from .catalog import ONBOARDING_STEPS, USER_AGENTS
from .config import STATUSES, ProductModel

__all__ = ["STATUSES", "ClosedLoopConfig", "PaywallEffect", "retired_parameters"]

_CURRENCIES = ("USD", "EUR", "GBP")  # the tracking plan's enum


@dataclass(frozen=True)
class PaywallEffect:
    """True effect of a paywall variant on the users it is shown to (at the end of their trial).

    Attributes:
        conversion_multiplier: multiplies the conversion probability.
        price_factor: multiplies the plan price of every payment of a converted user.
    """

    conversion_multiplier: float = 1.0
    price_factor: float = 1.0

    @property
    def relative_revenue_per_exposed(self) -> float:
        """Expected revenue per exposed user relative to ``control`` (1, 1), minus 1."""
        return self.conversion_multiplier * self.price_factor - 1.0


def _default_paywall() -> dict[str, PaywallEffect]:
    return {"control": PaywallEffect(1.0, 1.0), "discount_popup": PaywallEffect(1.05, 0.80)}


@dataclass(frozen=True, kw_only=True)
class ClosedLoopConfig(ProductModel):
    """Every knob of the closed-loop model, true effects included (see :meth:`true_effects`). The
    product's behaviour (visitors, funnel, prices, trial, billing, consent, email, activation, dormancy,
    sessions) comes from :class:`ProductModel` and the rules of :mod:`simulation.behaviour`, the same as
    the event simulator's; what is added here is what only the closed loop simulates: the interventions
    and their true effects.
    """

    # Acquisition and consent.
    arrivals_per_day: int = 400
    analytics_consent_rate: float = 0.95  # the others' events land with consent.analytics=false
    # Onboarding: the variant of flag `onboarding_flag` (one of ProductModel.onboarding_step_lift) adds its
    # lift to the step probability (simulation.behaviour).
    onboarding_flag: str = "onboarding_variant"
    # Context: additive change of the step probability per device type (desktop, mobile, tablet) and
    # variant, e.g. {"mobile": {"guided": -0.12, "checklist": 0.08}}: the best variant can differ by
    # device, which only a contextual policy finds. Empty: no context effect.
    onboarding_device_effect: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    # Conversion when the trial ends (the early converters, simulation.behaviour, never see the paywall):
    # p = min(1, (p_late + nudge_lift·nudged) · multiplier[variant]).
    trial_nudge_template: str = "trial_nudge"
    trial_nudge_lift: float = 0.08  # absolute, when a nudge was delivered during the trial
    paywall_flag: str = "paywall_variant"
    paywall_variants: Mapping[str, PaywallEffect] = field(default_factory=_default_paywall)
    # Churn of paying users: the daily hazard of p_cancel_monthly (simulation.behaviour); a retention
    # offer multiplies it.
    retention_offer_template: str = "retention_offer"
    retention_offer_churn_multiplier: float = 0.5
    retention_offer_days: int = 14
    # Messages sent up to this many hours into a day are delivered (and act) that day: the nightly
    # decision run that follows a day's close sends its emails in the first minutes of the next.
    delivery_cutoff_hours: int = 1

    def __post_init__(self) -> None:
        name = "ClosedLoopConfig"
        self._check_product(name)
        for attr in ("analytics_consent_rate", "trial_nudge_lift"):
            value = getattr(self, attr)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name}.{attr}", f"is {value!r}, outside [0, 1]", "Use a probability.")
        for attr in ("arrivals_per_day",):
            if not isinstance(getattr(self, attr), int) or getattr(self, attr) < 0:
                raise ConfigError(f"{name}.{attr}", f"is {getattr(self, attr)!r}", "Use a non-negative integer.")
        for attr in ("retention_offer_days",):
            if not isinstance(getattr(self, attr), int) or getattr(self, attr) < 1:
                raise ConfigError(f"{name}.{attr}", f"is {getattr(self, attr)!r}", "Use an integer >= 1.")
        if not isinstance(self.delivery_cutoff_hours, int) or not 0 <= self.delivery_cutoff_hours <= 23:
            raise ConfigError(f"{name}.delivery_cutoff_hours", f"is {self.delivery_cutoff_hours!r}",
                              "Use whole hours from 0 to 23.")
        devices = {device for _, device in USER_AGENTS}
        if set(self.onboarding_device_effect) - devices or any(
                set(effects) - set(self.onboarding_step_lift) or any(not -1.0 <= v <= 1.0 for v in effects.values())
                for effects in self.onboarding_device_effect.values()):
            raise ConfigError(f"{name}.onboarding_device_effect",
                              f"needs device types among {sorted(devices)}, variants of onboarding_step_lift and "
                              "effects within [-1, 1]", "Give additive effects per device and variant.")
        if "control" not in self.paywall_variants or any(
                not isinstance(e, PaywallEffect) or e.conversion_multiplier < 0 or e.price_factor < 0
                for e in self.paywall_variants.values()):
            raise ConfigError(f"{name}.paywall_variants", "needs a 'control' variant and PaywallEffect values",
                              "Map every variant (control included) to a PaywallEffect.")
        if set(self.plan_prices) != {"pro", "team"} or min(self.plan_prices.values()) < 0:
            raise ConfigError(f"{name}.plan_prices", "needs non-negative prices for exactly 'pro' and 'team'",
                              "Give a price for each plan of the tracking plan.")
        if self.currency not in _CURRENCIES:
            raise ConfigError(f"{name}.currency", f"is {self.currency!r}", f"Use one of {_CURRENCIES}.")
        # A probability an effect would push past 1 is capped (the truth records each user's): with the
        # default funnel the conversion a nudge and the popup raise stays below 1 for all but the rarest users.
        if not 0.0 <= self.retention_offer_churn_multiplier <= 10.0:
            raise ConfigError(f"{name}.retention_offer_churn_multiplier", f"is {self.retention_offer_churn_multiplier}",
                              "Use a multiplier of the churn hazard from 0 to 10.")

    def step_lift(self, variant: str, device: str | None) -> float:
        """What ``variant`` (on ``device``) adds to the onboarding step probability."""
        context = self.onboarding_device_effect.get(device, {}) if device is not None else {}
        return self.onboarding_step_lift[variant] + context.get(variant, 0.0)

    def completion_probability(self, variant: str, device: str | None = None) -> float:
        """True share of sign-ups (on ``device``; None: no context effect) shown ``variant`` who
        complete every onboarding step (the mean over the engagement distribution)."""
        return completion_rate(self, self.step_lift(variant, device), len(ONBOARDING_STEPS))

    def true_effects(self) -> dict[str, Any]:
        """The true effect of every intervention, as plain values.

        * ``onboarding``: completion probability per variant, the lift vs control, the best variant;
        * ``trial_nudge``: the absolute conversion lift of a nudge delivered during the trial (under
          the control paywall; under a variant it is scaled by that variant's conversion multiplier);
        * ``paywall``: per variant its multipliers and ``relative_revenue_per_exposed`` — expected
          revenue per user shown the variant relative to control, minus 1 (exact for the first
          payment, and for any horizon since churn does not depend on the variant);
        * ``retention_offer``: the churn-hazard multiplier, its duration, and the probability that a
          paying user of mean price sensitivity churns within that window, with and without the offer.
        """
        onboarding = {v: self.completion_probability(v) for v in self.onboarding_step_lift}
        control = onboarding["control"]
        by_device = {d: {v: self.completion_probability(v, d) for v in onboarding}
                     for d in sorted({device for _, device in USER_AGENTS})}
        h = float(cancel_daily_hazard(self, p_cancel_monthly(self, 0.5)))
        days, f = self.retention_offer_days, self.retention_offer_churn_multiplier
        return {
            "onboarding": {
                "completion_rate": onboarding,
                "step_lift": dict(self.onboarding_step_lift),
                "completion_rate_by_device": by_device,
                "best_by_device": {d: max(p, key=p.__getitem__) for d, p in by_device.items()},
                "lift_vs_control": {v: p - control for v, p in onboarding.items()},
                "best_variant": max(sorted(onboarding), key=lambda v: onboarding[v]),
                "activity_multiplier_if_completed": self.onboarded_activity_multiplier,
            },
            "trial_nudge": {
                "template": self.trial_nudge_template,
                "conversion_lift": self.trial_nudge_lift,
                "base_conversion": self.convert_base,
                "early_conversion_share": self.early_conversion_share,
            },
            "paywall": {
                v: {"conversion_multiplier": e.conversion_multiplier, "price_factor": e.price_factor,
                    "relative_revenue_per_exposed": e.relative_revenue_per_exposed}
                for v, e in self.paywall_variants.items()
            },
            "retention_offer": {
                "template": self.retention_offer_template,
                "churn_multiplier": f,
                "days": days,
                "churn_probability_in_window_without": 1.0 - (1.0 - h) ** days,
                "churn_probability_in_window_with": 1.0 - (1.0 - min(1.0, h * f)) ** days,
            },
        }

    def to_json(self) -> dict[str, Any]:
        """Plain JSON values (stored in the cursor, so a resumed run can check it has the same config)."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ClosedLoopConfig:
        """The inverse of :meth:`to_json`.

        Raises:
            ConfigError: ``data`` holds parameters this version does not have (a run of an earlier model).
        """
        values = dict(data)
        gone = retired_parameters(values)
        if gone:
            raise ConfigError("ClosedLoopConfig", f"was written by an earlier model with parameters it no longer has "
                              f"({', '.join(gone)})", "Simulate into a fresh root.")
        values["paywall_variants"] = {k: PaywallEffect(**v) for k, v in values["paywall_variants"].items()}
        return cls(**values)


def retired_parameters(config: Mapping[str, Any]) -> list[str]:
    """Parameters of a stored config that :class:`ClosedLoopConfig` no longer has."""
    return sorted(set(config) - {f.name for f in fields(ClosedLoopConfig)})
