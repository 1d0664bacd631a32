"""The landing-drift gates of one hour, from profiles: which past hours form each baseline, and the
verdicts of schema drift, distribution drift and the quarantine rate against them.

``orchestration/bronze/checks.py`` (the ``landing_drift`` check) and ``benchmarks/bench_gates.py`` (the
gates' false-alarm and detection rates) both judge hours through :func:`judge_landing_hour`, so what is
measured is what runs. Pure: profiles and ledger counts in, verdicts out.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from expectations.anomaly import (
    DriftVerdict,
    RateVerdict,
    distribution_verdict,
    quarantine_rate_verdict,
    schema_drift_verdict,
)

if TYPE_CHECKING:
    from lake.profiles import Profile

__all__ = ["HourBaselines", "LandingVerdicts", "baseline_keys", "hours_needed", "judge_landing_hour", "rate_counts",
           "volume_history_keys"]


@dataclass(frozen=True)
class HourBaselines:
    """The past hours each gate compares one landing hour with.

    Attributes:
        schema: every hour of the previous ``schema_drift.history_days`` days.
        same_time: the same time of day (± ``history_hours_around``) on each previous day (distribution).
        rate_time: the same, with the quarantine-rate gate's own window.
    """

    schema: tuple[str, ...]
    same_time: tuple[str, ...]
    rate_time: tuple[str, ...]

    def all(self) -> set[str]:
        return {*self.schema, *self.same_time, *self.rate_time}


@dataclass(frozen=True)
class LandingVerdicts:
    """The three landing-drift verdicts of one hour, with the number of profiled hours behind each."""

    schema: DriftVerdict
    schema_history_hours: int
    distribution: DriftVerdict
    distribution_history_hours: int
    quarantine_rate: RateVerdict


def _same_time(hour: Any, days: int, around: int) -> tuple[str, ...]:
    from lake.ingest import partition_key

    return tuple(partition_key(hour - timedelta(days=d, hours=h))
                 for d in range(1, days + 1) for h in range(-around, around + 1))


def baseline_keys(key: str, config: Mapping[str, Any]) -> HourBaselines:
    """The baseline hours of landing hour ``key`` under ``config`` (``load_config()``)."""
    from lake.ingest import hour_keys, parse_partition_key

    schema_cfg, dist_cfg, rate_cfg = config["schema_drift"], config["distribution_drift"], config["quarantine_rate"]
    hour = parse_partition_key(key)
    return HourBaselines(
        schema=tuple(hour_keys(hour - timedelta(days=int(schema_cfg["history_days"])), hour)),
        same_time=_same_time(hour, int(dist_cfg["history_days"]), int(dist_cfg["history_hours_around"])),
        rate_time=_same_time(hour, int(rate_cfg["history_days"]), int(rate_cfg["history_hours_around"])),
    )


def rate_counts(profile: Profile, overall: tuple[int, int], events: Collection[str] | None = None,
                ) -> tuple[dict[str, tuple[int, int]], dict[tuple[str, str, str], int]]:
    """An hour's ``scope -> (quarantined, lines)`` (``all`` from the ledger, events and sources from the
    profile) and its quarantined lines per ``(violation_type, event, source)``.

    ``events``: the tracking plan's events, the only ones judged on their own. An event the plan does
    not know is quarantined whole by the contract, so its own share is 100% by definition and says
    nothing (at 10M lines a week, 27 hours failed on such events alone); its lines still count in
    ``all`` and in their source, and ``growthlake plan changes`` names it.
    """
    violations: dict[tuple[str, str, str], int] = {}
    by_event: dict[str, int] = {}
    by_source: dict[str, int] = {}
    for key, count in profile.dimension("quarantine").items():
        violation, source, event_name = key.split("|", 2)
        violations[(violation, event_name, source)] = count
        if event_name:
            by_event[event_name] = by_event.get(event_name, 0) + count
        by_source[source] = by_source.get(source, 0) + count
    scopes = {"all": overall}
    scopes |= {f"event:{e}": (by_event.get(e, 0), n) for e, n in profile.dimension("event_lines").items()
               if events is None or e in events}
    scopes |= {f"source:{s}": (by_source.get(s, 0), n) for s, n in profile.dimension("source_lines").items()}
    return scopes, violations


def judge_landing_hour(key: str, *, hours: Mapping[str, Profile], ledger: Mapping[str, tuple[int, int]],
                       planned: Mapping[str, Collection[str]], config: Mapping[str, Any],
                       baselines: HourBaselines | None = None) -> LandingVerdicts:
    """Judge landing hour ``key`` for schema drift, distribution drift and its quarantine rate.

    Args:
        key: the hour.
        hours: profiles by hour (the hour and its baselines; missing hours were not ingested).
        ledger: ``(quarantined, lines_landed)`` by hour, from the ingestion ledger.
        planned: the tracking plan's properties per event.
        config: the gates' thresholds (``expectations.anomaly.load_config()``).
        baselines: :func:`baseline_keys` of ``key`` (computed when omitted).
    """
    from lake.profiles import Profile

    base = baselines or baseline_keys(key, config)
    now = hours.get(key, Profile(hours={key}))
    history = Profile.total(hours[k] for k in base.schema if k in hours)
    same_hour = Profile.total(hours[k] for k in base.same_time if k in hours)
    schema = schema_drift_verdict(now.dimension("event_lines"), now.dimension("property"), planned,
                                  history.dimension("event_lines"), history.dimension("property"),
                                  **config["schema_drift"])
    dist = distribution_verdict(now.columns(), same_hour.columns(), n_history_hours=len(same_hour.hours),
                                **config["distribution_drift"])
    rate_now, violations = rate_counts(now, ledger.get(key, (0, 0)), planned)
    rate_history: dict[str, list[tuple[int, int]]] = {}
    for past in base.rate_time:
        if past in ledger and past in hours:
            for scope, pair in rate_counts(hours[past], ledger[past], planned)[0].items():
                rate_history.setdefault(scope, []).append(pair)
    rate = quarantine_rate_verdict(rate_now, rate_history, violations, **config["quarantine_rate"])
    return LandingVerdicts(schema, len(history.hours), dist, len(same_hour.hours), rate)


def volume_history_keys(key: str, config: Mapping[str, Any]) -> list[str]:
    """The hours the volume gate compares ``key`` with: the same weekday and hour, weeks back."""
    from lake.ingest import parse_partition_key, partition_key

    hour = parse_partition_key(key)
    return [partition_key(hour - timedelta(weeks=w)) for w in range(1, int(config["volume"]["weeks"]) + 1)]


def hours_needed(keys: Iterable[str], config: Mapping[str, Any]) -> dict[str, HourBaselines]:
    """:func:`baseline_keys` of every hour of ``keys``."""
    return {key: baseline_keys(key, config) for key in keys}
