"""History-based anomaly tests: is a figure out of line with its own past?

Volume per landing hour is compared with the same hour of the same weekday in the weeks before
(traffic has a daily and a weekly shape, so the right baseline is "Tuesdays at 14:00", not the
previous hour). The test is a robust z-score on the log scale: distance from the median in units of
the scaled median absolute deviation (1.4826 · MAD ≈ one standard deviation for normal data), which a
single earlier outlier cannot move. Floors keep it from crying wolf: the scale is at least 5% (a flat
history would otherwise make any change infinite) and at least the spread of a bursty count
``sqrt(dispersion / median)`` above the median (quiet hours of a growing product), a tighter
``sqrt(dispersion_below / median)`` below; the change must also exceed ``min_relative_change`` of the
median. Calibrated on clean simulated traffic by ``benchmarks/bench_gates.py``.

The quarantine share (:func:`quarantine_rate_verdict`) is judged the same robust way: overall, per
event and per source, against the same time of day on the previous days.

Schema drift (:func:`schema_drift_verdict`) compares an hour's properties with the tracking plan
and with the previous days; distribution drift (:func:`distribution_verdict`) compares the mix of
key columns with the previous days by the population stability index. Thresholds live in
``anomaly.yaml`` (:func:`load_config`); the hour's figures come from ``lake.profiles``.
"""

from __future__ import annotations

import math
import os
import statistics
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lake.settings import current as current_settings

if TYPE_CHECKING:
    from numpy.typing import ArrayLike  # numpy itself is imported where it is used

__all__ = ["CONFIG_ENV", "PSI_EPSILON", "DriftVerdict", "RateScope", "RateVerdict", "VolumeVerdict",
           "chi_square_p_value", "distribution_verdict", "load_config", "psi_from_counts", "quarantine_rate_verdict",
           "schema_drift_verdict", "volume_verdict"]

_MAD_TO_SD = 1.4826


@dataclass(frozen=True)
class VolumeVerdict:
    """The verdict on one figure against its history.

    Attributes:
        passed: False when the figure is anomalous.
        value: The figure tested.
        median: Median of the history (None without enough history).
        scale: The robust standard deviation of log(1 + figure) used (None without enough history).
        robust_z: ``(log1p(value) - median of log1p(history)) / scale`` (None without enough history).
        n_history: Comparable past figures.
        threshold: |z| above which the figure is anomalous.
        note: One human sentence.
    """

    passed: bool
    value: float
    median: float | None
    scale: float | None
    robust_z: float | None
    n_history: int
    threshold: float
    note: str

    def to_metadata(self) -> dict[str, Any]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def volume_verdict(value: float, history: Sequence[float], *, threshold: float = 4.0, min_history: int = 4,
                   min_relative_change: float = 0.25, dispersion: float = 40.0, dispersion_below: float = 4.0,
                   **_: Any) -> VolumeVerdict:
    """Judge ``value`` against ``history`` (comparable past figures, e.g. same weekday and hour).

    The test is on the log scale (``log1p``): an outage (value → 0) is as far out as a flood is, and a
    growing lake's history does not stretch the scale of its quiet hours. The scale is the robust
    standard deviation of the log history, floored at 5% (a flat history) and, above the median, at
    ``sqrt(dispersion / median)`` — the spread of a count whose variance is ``dispersion`` times its mean
    (lines arrive in sessions of a few dozen events, and a growing product's quiet hour doubles by chance
    far more often than a Poisson count does) — below it at ``sqrt(dispersion_below / median)`` (a quiet
    hour of a few people's sessions falls by a third by chance — with the Poisson floor, 3 of 1,326
    clean hours judged in bench_gates' long lakes failed that way; an outage falls by far more).
    Fewer than ``min_history`` past figures: passed, with a note (a new lake has no baseline).
    """
    if threshold <= 0 or min_history < 2 or min_relative_change < 0 or dispersion < 1 or dispersion_below < 1:
        raise ValueError("volume_verdict: threshold > 0, min_history >= 2, min_relative_change >= 0, "
                         "dispersion >= 1 and dispersion_below >= 1 are required")
    past = [float(h) for h in history]
    if len(past) < min_history:
        return VolumeVerdict(True, float(value), None, None, None, len(past), threshold,
                             f"only {len(past)} comparable past hour(s), {min_history} needed: not judged")
    median = statistics.median(past)
    logs = [math.log1p(h) for h in past]
    center = statistics.median(logs)
    mad = statistics.median(abs(h - center) for h in logs) * _MAD_TO_SD
    # Above the median, a growing product's bursty hours: the count's variance is `dispersion` times its
    # mean. Below it, a tighter floor (`dispersion_below`): clean hours fall less far than they rise.
    burst = dispersion if value > median else dispersion_below
    scale = max(mad, 0.05, math.sqrt(burst / max(median, 1.0)))
    z = (math.log1p(float(value)) - center) / scale
    change = abs(float(value) - median) / median if median else float("inf")
    anomalous = abs(z) > threshold and change > min_relative_change
    direction = "above" if value > median else "below"
    note = (f"{value:,.0f} is {change:.0%} {direction} the median {median:,.0f} of {len(past)} comparable hours "
            f"(robust z {z:+.1f} on the log scale, threshold ±{threshold:g})")
    return VolumeVerdict(not anomalous, float(value), median, scale, z, len(past), threshold, note)


# -- configuration ---------------------------------------------------------------------------------

CONFIG_ENV = "GROWTHLAKE_ANOMALY_CONFIG"
_DEFAULT_CONFIG = Path(__file__).with_name("anomaly.yaml")


def _merge(base: dict, over: Mapping) -> dict:
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, Mapping) and isinstance(out.get(key), dict) else value
    return out


def load_config(path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The gates' thresholds: ``anomaly.yaml`` beside this module, merged with the YAML file named
    by ``path`` or ``$GROWTHLAKE_ANOMALY_CONFIG`` (only the keys it sets change)."""
    import yaml

    config = yaml.safe_load(_DEFAULT_CONFIG.read_text())
    override = path or current_settings().anomaly_config
    if override:
        try:
            extra = yaml.safe_load(Path(override).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ValueError(f"{CONFIG_ENV}={override}: cannot read the gates' thresholds ({exc}); "
                             f"fix the file or unset the variable to use {_DEFAULT_CONFIG}") from None
        unknown = set(extra) - set(config)
        if unknown:
            raise ValueError(f"{override}: unknown gate(s) {sorted(unknown)}; known: {sorted(config)}")
        config = _merge(config, extra)
    return config


# -- population stability ------------------------------------------------------------------------

PSI_EPSILON = 1e-4
"""Smallest share a bin may have in the PSI sum; smaller shares (i.e. zero) are raised to it.

A bin empty on one side would otherwise make ``ln(a/e)`` infinite. Shares are not renormalised
afterwards, so the PSI of two distributions without empty bins (and no share below 1e-4) is
exactly the textbook value. A category that appears in a share ``a`` of the new rows and never
before contributes about ``a * ln(a / 1e-4)``, e.g. 3.5 for ``a = 0.4``: far above any threshold.
"""


def psi_from_counts(expected_counts: ArrayLike, actual_counts: ArrayLike) -> float:
    """Population stability index of two count vectors over the same bins."""
    import numpy as np

    expected = np.asarray(expected_counts, dtype=np.float64)
    actual = np.asarray(actual_counts, dtype=np.float64)
    expected_shares = np.maximum(expected / expected.sum(), PSI_EPSILON)
    actual_shares = np.maximum(actual / actual.sum(), PSI_EPSILON)
    terms = (actual_shares - expected_shares) * np.log(actual_shares / expected_shares)
    return float(max(terms.sum(), 0.0))


# -- schema and distribution drift -----------------------------------------------------------------

@dataclass(frozen=True)
class DriftVerdict:
    """The verdict of a drift gate on one landing hour.

    Attributes:
        passed: False when something drifted.
        findings: One sentence per drifted item (empty when passed).
        judged: What was compared (properties or columns), e.g. ``{"device_type": 0.012}`` PSIs.
        note: One human sentence.
    """

    passed: bool
    findings: tuple[str, ...]
    judged: dict[str, Any]
    note: str

    def to_metadata(self) -> dict[str, Any]:
        return {"passed": self.passed, "findings": list(self.findings)[:20], "judged": len(self.judged),
                "note": self.note}


Counts = Mapping[str, float]  # key -> count


def schema_drift_verdict(event_lines: Counts, properties: Counts, planned: Mapping[str, Collection[str]],
                         history_lines: Counts, history_properties: Counts, *, min_lines: int = 20,
                         unplanned_min_share: float = 0.05, min_history_lines: int = 100,
                         missing_baseline_share: float = 0.5, missing_ratio: float = 0.5, missing_alpha: float = 1e-6,
                         **_: Any) -> DriftVerdict:
    """Schema drift at landing: properties the plan does not know, or planned ones gone missing.

    Args:
        event_lines: lines per event name landed this hour (bronze and quarantine).
        properties: lines carrying each ``"event.property"`` this hour.
        planned: the tracking plan's properties per event.
        history_lines, history_properties: the same counts over the baseline hours.

    An unplanned property trips the gate when it rides on at least ``unplanned_min_share`` of its
    event's lines (a client release that started sending it), not on a stray faulty line — those
    are quarantined one by one anyway. A planned property trips it when it used to be on at least
    ``missing_baseline_share`` of the event's lines and is now on less than ``missing_ratio`` of
    that share (a client release that stopped sending it), unless so few lines could carry it that
    seldom by chance: the binomial probability of at most this many lines with the property, at the
    baseline's share, must be below ``missing_alpha`` (7 of 20 sign-ups with a referrer against 71%
    before happens about once in 1,100 hours; none of 20 about once in 10^11).
    """
    findings: list[str] = []
    judged: dict[str, Any] = {}
    for key, count in sorted(properties.items()):
        event, _dot, prop = key.partition(".")  # `_` is the **_ of the signature
        lines = event_lines.get(event, 0)
        if event not in planned or prop in planned[event] or lines < min_lines:
            continue
        share = count / lines
        judged[key] = round(share, 4)
        if count >= min_lines and share >= unplanned_min_share:
            findings.append(f"unplanned property {key} on {count:,} of {lines:,} {event} lines ({share:.0%})")
    for event, props in sorted(planned.items()):
        lines, past_lines = event_lines.get(event, 0), history_lines.get(event, 0)
        if lines < min_lines or past_lines < min_history_lines:
            continue
        for prop in sorted(props):
            key = f"{event}.{prop}"
            before = history_properties.get(key, 0) / past_lines
            if before < missing_baseline_share:
                continue
            now = properties.get(key, 0) / lines
            judged[key] = round(now, 4)
            if now < before * missing_ratio and _binomial_cdf(properties.get(key, 0), lines, before) < missing_alpha:
                findings.append(f"property {key} on {now:.0%} of {lines:,} {event} lines, {before:.0%} in the baseline")
    note = ("; ".join(findings) if findings
            else f"{len(judged)} properties judged: none unplanned on ≥{unplanned_min_share:.0%} of lines, "
                 "none missing")
    return DriftVerdict(not findings, tuple(findings), judged, note)


def _binomial_cdf(k: float, n: float, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p)."""
    if p >= 1.0:
        return 1.0 if k >= n else 0.0
    from scipy.stats import binom

    return float(binom.cdf(k, n, p))


def chi_square_p_value(expected_counts: Sequence[float], actual_counts: Sequence[float]) -> float:
    """P-value of the chi-square goodness-of-fit test of ``actual_counts`` (independent units) against
    the shares of ``expected_counts`` (shares floored at :data:`PSI_EPSILON`, so a value never seen
    before is very unlikely rather than impossible)."""
    import numpy as np
    from scipy.stats import chi2

    expected = np.asarray(expected_counts, dtype=np.float64)
    actual = np.asarray(actual_counts, dtype=np.float64)
    n = actual.sum()
    if n == 0 or len(actual) < 2:
        return 1.0
    shares = np.maximum(expected / expected.sum(), PSI_EPSILON)
    statistic = float((((actual - n * shares) ** 2) / (n * shares)).sum())
    return float(chi2.sf(statistic, df=len(actual) - 1))


def _pool(counts: Counts, keep: Collection[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in counts.items():
        name = key if key in keep else "(other)"
        out[name] = out.get(name, 0) + value
    return out


def distribution_verdict(hour: Mapping[str, Counts], history: Mapping[str, Counts], *, n_history_hours: int,
                         min_history_hours: int = 4, min_units: int = 30, psi_threshold: float = 0.25,
                         significance: float = 1e-4, min_category_share: float = 0.02, min_history_units: int = 200,
                         small_hour_units: int = 0, small_hour_psi: float = 1.0, **_: Any) -> DriftVerdict:
    """Distribution drift of key columns: this hour's mix against the baseline's.

    ``hour`` and ``history`` map a column to its counts per value (or bin), counted in independent
    units (people, not their events). A column drifted when its population stability index exceeds
    ``psi_threshold`` (a shift that matters) and the chi-square test rejects the baseline's shares
    at ``significance`` (a shift that is not a small-sample fluke: an hour of 40 people reaches a PSI
    of 0.25 by chance far more often than an hour of 4,000). A column is judged when the hour has
    ``min_units`` of it and the baseline has ``min_history_hours`` profiled hours holding
    ``min_history_units`` of it (a thin baseline, e.g. the quiet hours of a young lake, would flag
    the lake's own growth). Values below
    ``min_category_share`` of the baseline (and values never seen before) are pooled into one
    ``(other)`` bin: one visitor on a rare browser is not a shift, a flood of new values is.

    An hour with fewer than ``small_hour_units`` units of a column is held to ``small_hour_psi`` instead
    of ``psi_threshold``: the people of a quiet hour are few and not independent draws (clean simulated
    hours of ~30 people reached PSI 0.67 at p 2e-8), so only a takeover (e.g. every event from one
    device) is drift there.
    """
    if n_history_hours < min_history_hours:
        return DriftVerdict(True, (), {}, f"only {n_history_hours} profiled hour(s) in the baseline, "
                                          f"{min_history_hours} needed: not judged")
    findings: list[str] = []
    judged: dict[str, Any] = {}
    for column, counts in sorted(hour.items()):
        base = history.get(column, {})
        if sum(counts.values()) < min_units or sum(base.values()) < min_history_units:
            continue
        base_total = sum(base.values())
        common = {k for k, v in base.items() if v >= min_category_share * base_total}
        pooled_base, pooled_now = _pool(base, common), _pool(counts, common)
        keys = sorted(pooled_base.keys() | pooled_now.keys())
        expected, actual = [pooled_base.get(k, 0) for k in keys], [pooled_now.get(k, 0) for k in keys]
        psi = psi_from_counts(expected, actual)
        judged[column] = round(psi, 4)
        bar = small_hour_psi if sum(actual) < small_hour_units else psi_threshold
        if psi > bar:
            p_value = chi_square_p_value(expected, actual)
            if p_value >= significance:
                continue
            moved = max(keys, key=lambda k: abs(pooled_now.get(k, 0) / sum(actual)
                                                - pooled_base.get(k, 0) / base_total))
            findings.append(f"{column} shifted: PSI {psi:.2f} > {bar:g}, p {p_value:.1g} ({moved!r} is "
                            f"{pooled_now.get(moved, 0) / sum(actual):.0%} of the hour, "
                            f"{pooled_base.get(moved, 0) / base_total:.0%} before)")
    note = "; ".join(findings) if findings else (
        f"{len(judged)} column(s) judged, max PSI {max(judged.values()):.3f} ≤ {psi_threshold:g}" if judged
        else f"no column has {min_units} units this hour: not judged")
    return DriftVerdict(not findings, tuple(findings), judged, note)


# -- quarantine rate -------------------------------------------------------------------------------

@dataclass(frozen=True)
class RateScope:
    """The quarantine share of one scope of an hour (``all``, ``event:<name>`` or ``source:<files>``).

    Attributes:
        scope: What was counted.
        quarantined, lines: This hour's quarantined lines and lines of the scope.
        median: Median share of the history hours (None when not judged against a history).
        upper: The band's upper edge: a share above it fails (None when not judged).
        n_history: History hours with at least ``min_lines`` lines of the scope.
        passed: False when the share is above the band.
    """

    scope: str
    quarantined: int
    lines: int
    median: float | None
    upper: float | None
    n_history: int
    passed: bool

    @property
    def share(self) -> float:
        return self.quarantined / self.lines if self.lines else 0.0


@dataclass(frozen=True)
class RateVerdict:
    """The verdict of the quarantine-rate gate on one landing hour.

    Attributes:
        passed: False when a scope's share is above its band.
        overall: The hour as a whole.
        failing: The scopes above their band, worst first.
        judged: Scopes compared (overall included).
        top_violations: The hour's most frequent quarantine reasons, ``(type, event, source, count)``.
        note: One human sentence.
    """

    passed: bool
    overall: RateScope
    failing: tuple[RateScope, ...]
    judged: int
    top_violations: tuple[tuple[str, str, str, int], ...]
    note: str

    def to_metadata(self) -> dict[str, Any]:
        o = self.overall
        return {"passed": self.passed, "share": round(o.share, 4), "quarantined": o.quarantined, "lines": o.lines,
                "median": None if o.median is None else round(o.median, 4),
                "band_upper": None if o.upper is None else round(o.upper, 4), "history_hours": o.n_history,
                "scopes_judged": self.judged, "failing": [f"{s.scope} {s.share:.1%}" for s in self.failing][:20],
                "top_violations": [f"{t} {e or '(no event)'} {s}: {n}" for t, e, s, n in self.top_violations]}


def _binomial_tail(quarantined: int, lines: int, rate: float) -> float:
    """P(X >= quarantined) for X ~ Binomial(lines, rate)."""
    from scipy.stats import binom

    return float(binom.sf(quarantined - 1, lines, min(max(rate, 1e-6), 1.0)))


def _judge_scope(scope: str, quarantined: int, lines: int, history: Sequence[tuple[int, int]], *, threshold: float,
                 min_lines: int, min_history: int, min_excess: float, significance: float, young_max_share: float,
                 ) -> RateScope | None:
    if lines < min_lines:
        return None
    share = quarantined / lines
    shares = [q / n for q, n in history if n >= min_lines]
    if len(shares) < min_history:
        # A young lake (or a new event): no learned band yet, only an extreme share fails.
        return RateScope(scope, quarantined, lines, None, young_max_share, len(shares), share <= young_max_share)
    median = statistics.median(shares)
    mad = statistics.median(abs(s - median) for s in shares) * _MAD_TO_SD
    pooled = sum(q for q, _n in history) / max(sum(n for _q, n in history), 1)
    robust = median + threshold * mad
    upper = max(robust, median + min_excess)
    # Above the learned band, and not a small-sample fluke: the count is improbable even at the robust
    # band's edge (or the history's pooled rate, if higher) for an hour of this many lines.
    anomalous = share > upper and _binomial_tail(quarantined, lines, max(robust, pooled)) < significance
    return RateScope(scope, quarantined, lines, median, upper, len(shares), not anomalous)


def quarantine_rate_verdict(now: Mapping[str, tuple[int, int]], history: Mapping[str, Sequence[tuple[int, int]]],
                            violations: Mapping[tuple[str, str, str], int], *, threshold: float = 4.0,
                            min_lines: int = 50, min_history: int = 6, min_excess: float = 0.05,
                            significance: float = 1e-6, young_max_share: float = 0.5, top: int = 5,
                            **_: Any) -> RateVerdict:
    """The hour's quarantine share, overall and per event and source, against its own history.

    Args:
        now: ``scope -> (quarantined, lines)`` this hour; ``"all"`` is the hour as a whole, the others
            ``event:<name>`` and ``source:<files>``.
        history: ``scope -> [(quarantined, lines), ...]``, one pair per baseline hour.
        violations: this hour's quarantined lines per ``(violation_type, event name, source)``.

    A scope is judged when it has ``min_lines`` lines this hour. With ``min_history`` baseline hours of
    ``min_lines`` lines each, its band is the median share plus ``threshold`` robust standard deviations
    (1.4826 · MAD of the hourly shares), at least ``min_excess`` above the median; the share fails when it
    is above the band and a binomial test puts the count beyond chance at ``significance`` (an hour of 50
    lines reaches a few quarantined lines by chance, one of 5,000 does not). Without that history (a young
    lake, a new event) the band is the fixed ``young_max_share``: only an extreme share fails.
    """
    def judge(scope: str, quarantined: int, lines: int) -> RateScope | None:
        return _judge_scope(scope, quarantined, lines, history.get(scope, ()), threshold=threshold,
                            min_lines=min_lines, min_history=min_history, min_excess=min_excess,
                            significance=significance, young_max_share=young_max_share)

    q_all, n_all = now.get("all", (0, 0))
    overall = judge("all", q_all, n_all) or RateScope("all", q_all, n_all, None, None,
                                                     len(history.get("all", ())), True)
    scopes = [overall] if overall.upper is not None else []
    for scope, (q, n) in sorted(now.items()):
        if scope != "all" and (judged := judge(scope, q, n)) is not None:
            scopes.append(judged)
    failing = tuple(sorted((s for s in scopes if not s.passed), key=lambda s: (-s.quarantined, s.scope)))
    worst = tuple((t, e, s, n) for (t, e, s), n in sorted(violations.items(), key=lambda kv: (-kv[1], kv[0]))[:top])
    named = ", ".join(f"{t} on {e or '(no event)'} from {s} ×{n:,}" for t, e, s, n in worst)
    if failing:
        note = ("quarantine share above its band: " + "; ".join(
            f"{s.scope} {s.share:.0%} ({s.quarantined:,} of {s.lines:,} lines, band ≤{s.upper:.0%}"
            + (f", median {s.median:.1%} of {s.n_history} hours)" if s.median is not None
               else f", no history of {min_history} hours)") for s in failing[:5])
            + f". Top violations: {named}")
    elif overall.upper is None:
        note = f"{n_all:,} lines this hour, {min_lines} needed: not judged"
    else:
        note = (f"quarantine share {overall.share:.1%} ({q_all:,} of {n_all:,} lines) within its band "
                + (f"≤{overall.upper:.1%} (median {overall.median:.1%} of {overall.n_history} hours)"
                   if overall.median is not None else f"≤{overall.upper:.0%} (young lake: fixed band)")
                + f"; {len(scopes)} scope(s) judged")
    return RateVerdict(not failing, overall, failing, len(scopes), worst, note)
