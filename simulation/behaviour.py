"""Behaviour rules both simulators apply, each written once (the parameters live in :class:`ProductModel`).

``simulate`` (whole journeys, one per-user generator) and ``ClosedLoopSimulator`` (day-stepped,
keyed draws) call these functions with their own uniforms, so a rule, its parameter and its meaning
are the same in both. Each function takes scalars or numpy arrays.

* **Dormancy**: a signed-up user stops using the product with a daily hazard that falls with
  engagement; paying users go dormant less often. A dormant user has no more sessions, still gets
  email and opens it less often. (Cancelling a subscription is a separate event and hazard.)
* **Weekend activity**: on Saturdays and Sundays (UTC) a known user is active less often.
* **Payment failures**: a renewal fails with a fixed probability; the retry, ``PAYMENT_RETRY_DAYS``
  later, succeeds and the billing dates stay where they were.
* **Sessions**: an active day has ``1 + Poisson(extra_sessions_per_day · e)`` sessions, a session
  ``1 + Poisson(actions_per_session · (0.4 + 1.2 e))`` in-app actions (the first is always there).
* **Email opens**: the probability that a delivered email is opened scales with engagement
  (``0.5 + e``) and drops for dormant users.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .config import ProductModel

__all__ = ["DORMANT_OPEN_FACTOR", "PAYMENT_RETRY_DAYS", "actions_mean", "dormancy_hazard", "extra_sessions_mean",
           "is_weekend", "open_probability", "weekend_factor"]

PAYMENT_RETRY_DAYS = 3
"""Days between a failed renewal and its (successful) retry."""
DORMANT_OPEN_FACTOR = 0.4
"""A dormant user opens email this many times as often as an active one."""


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
    return cfg.email_open_rate * (0.5 + engagement) * np.where(dormant, DORMANT_OPEN_FACTOR, 1.0)
