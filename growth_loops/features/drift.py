"""Drift gate: how far each feature's distribution moved between two materializations.

The measure is the population stability index (PSI) of every feature of a view, comparing the
previous materialization (``expected``) with the new one (``actual``)::

    PSI = sum over bins of (a_i - e_i) * ln(a_i / e_i)

where ``e_i`` and ``a_i`` are the shares of rows falling into bin ``i`` on each side. It is zero
for identical distributions and grows with every share that moves; a bin empty on one side only
is what makes it large (see ``PSI_EPSILON``).

Rules of thumb used across credit scoring and ML monitoring:

* PSI < 0.1 — stable, no action;
* 0.1 <= PSI <= 0.25 — moderate shift, worth a look;
* PSI > 0.25 — significant shift, the population (or the pipeline producing it) has changed.

The gate's default threshold is 0.25, the edge of "significant": a blocking gate should fail on a
change somebody must act on, not on the seasonal wobble of the 0.1–0.25 band, which would train
people to override it. Two independent samples of a few thousand rows from one distribution stay
well below 0.05 with ten bins, so 0.25 leaves a wide margin against false alarms while still
catching, for instance, a one-standard-deviation mean shift (PSI around 0.5–1) or a null rate
jumping from 5% to 50%. Lower it per view for features that must be held tighter.

Binning (see ``population_stability_index``): numeric features use deciles of the previous
materialization, or one bin per value when it has at most ``bins`` distinct values (counts,
flags, ratings); strings and booleans use one bin per category; nulls (and NaN) always have a bin
of their own, because a jump in the null rate is drift too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl

from expectations.anomaly import PSI_EPSILON, psi_from_counts
from growth_loops.features.errors import FeatureStoreError
from growth_loops.features.views import FeatureView

__all__ = [
    "PSI_EPSILON",
    "DriftReport",
    "FeatureDrift",
    "drift_report",
    "population_stability_index",
]

_NUMERIC, _STRING, _BOOL, _NULL = "numeric", "string", "bool", "null"


def population_stability_index(expected: pl.Series, actual: pl.Series, *, bins: int = 10) -> float:
    """PSI of ``actual`` against the reference ``expected``: 0 when the distributions are the same.

    Binning:

    * Numeric series (any int or float dtype; ints and floats may be mixed): when ``expected`` has
      at most ``bins`` distinct non-null values, each of them is its own bin, and so is each gap
      between them and beyond them (empty in ``expected`` by construction), so a value never
      seen before counts as drift instead of being merged into a neighbour. Otherwise the interior
      edges are the ``1/bins, ..., (bins-1)/bins`` quantiles of ``expected`` (deduplicated, so
      heavy ties yield fewer, wider bins), with bins ``(-inf, q1], (q1, q2], ..., (q_last, +inf)``.
    * String, categorical and boolean series: one bin per category seen on either side.
    * In every case nulls have a bin of their own; NaN counts as null.

    Shares are computed over all rows of each side, nulls included, and any share below
    ``PSI_EPSILON`` is raised to it (see there).

    Args:
        expected: The reference distribution (the previous materialization).
        actual: The distribution to compare (the new materialization).
        bins: Number of quantile bins for numeric series, and the distinct-value count up to
            which a numeric series is binned per value. At least 2.

    Returns:
        The PSI, a finite float >= 0.

    Raises:
        FeatureStoreError: (a ``ValueError``) when a side is empty, ``bins`` is below 2, a dtype is
            not numeric, string-like, boolean or all-null, or the two dtypes are not comparable
            (e.g. a string against a number). A series of dtype ``Null`` compares with anything.
    """
    subject = f"drift of {expected.name!r}" if expected.name else "drift"
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 2:
        raise FeatureStoreError(subject, f"bins must be an int >= 2, got {bins!r}", "Use e.g. bins=10.")
    for label, series in (("expected", expected), ("actual", actual)):
        if series.len() == 0:
            raise FeatureStoreError(
                subject,
                f"the {label} series is empty",
                "Compare only materializations that have rows; skip the check otherwise.",
            )
    kinds = {_kind(expected, "expected", subject), _kind(actual, "actual", subject)} - {_NULL}
    if len(kinds) > 1:
        raise FeatureStoreError(
            subject,
            f"the dtypes are not comparable: expected is {expected.dtype}, actual is {actual.dtype}",
            "Cast both sides to the feature's declared dtype before comparing them.",
        )
    kind = kinds.pop() if kinds else _NULL
    if kind == _NUMERIC:
        expected_counts, actual_counts = _numeric_counts(expected, actual, bins)
    else:
        expected_counts, actual_counts = _category_counts(expected, actual)
    return psi_from_counts(expected_counts, actual_counts)


@dataclass(frozen=True)
class FeatureDrift:
    """The drift of one feature between two materializations.

    Attributes:
        feature: Feature (column) name.
        psi: Its PSI, or None when it was not compared (see ``note``).
        rows_expected: Rows of the previous materialization.
        rows_actual: Rows of the new materialization.
        note: Why ``psi`` is None, or another remark; empty when there is nothing to say.
    """

    feature: str
    psi: float | None
    rows_expected: int
    rows_actual: int
    note: str = ""


@dataclass(frozen=True)
class DriftReport:
    """The drift gate's verdict on one view: the PSI of each feature against a threshold.

    Attributes:
        view: Name of the feature view.
        threshold: A feature drifts when its PSI is strictly above this.
        features: One entry per feature of the view, in declaration order.
    """

    view: str
    threshold: float
    features: tuple[FeatureDrift, ...]

    @property
    def passed(self) -> bool:
        """True when no feature's PSI is above the threshold (features not compared do not fail)."""
        return not self.drifted

    @property
    def drifted(self) -> tuple[str, ...]:
        """Names of the features whose PSI is above the threshold, in declaration order."""
        return tuple(f.feature for f in self.features if f.psi is not None and f.psi > self.threshold)

    @property
    def max_psi(self) -> float | None:
        """The largest PSI of any compared feature, or None when none was compared."""
        values = [f.psi for f in self.features if f.psi is not None]
        return max(values) if values else None

    def summary(self) -> str:
        """One human-readable line, e.g. ``drift above PSI 0.25 in events_7d (0.91), plan (0.40)``.

        Drifted features are listed from the largest PSI down; features that were not compared
        are mentioned at the end.
        """
        threshold = f"{self.threshold:g}"
        compared = [(f, f.psi) for f in self.features if f.psi is not None]
        skipped = [f for f in self.features if f.psi is None]
        if self.drifted:
            worst = sorted(((f, psi) for f, psi in compared if psi > self.threshold), key=lambda fp: -fp[1])
            line = f"drift above PSI {threshold} in " + ", ".join(
                f"{f.feature} ({self._format(psi)})" for f, psi in worst
            )
        elif compared:
            top, top_psi = max(compared, key=lambda fp: fp[1])
            line = f"no drift above PSI {threshold} (max {self._format(top_psi)} in {top.feature})"
        else:
            line = f"drift not measured (PSI threshold {threshold})"
        if skipped:
            reasons = sorted({f.note for f in skipped if f.note})
            line += f"; not compared: {', '.join(f.feature for f in skipped)}"
            if reasons:
                line += f" ({'; '.join(reasons)})"
        return line

    def to_metadata(self) -> dict:
        """JSON-safe summary for a materialization's metadata: PSI per feature rounded to 4 places."""
        return {
            "view": self.view,
            "threshold": self.threshold,
            "passed": self.passed,
            "drifted": list(self.drifted),
            "max_psi": None if self.max_psi is None else round(self.max_psi, 4),
            "psi": {f.feature: None if f.psi is None else round(f.psi, 4) for f in self.features},
            "notes": {f.feature: f.note for f in self.features if f.note},
            "summary": self.summary(),
        }

    def _format(self, psi: float) -> str:
        """Two decimals, or four when two would hide which side of the threshold ``psi`` is on."""
        short = f"{psi:.2f}"
        if (float(short) > self.threshold) != (psi > self.threshold):
            return f"{psi:.4f}"
        return short


def drift_report(
    previous: pl.DataFrame,
    current: pl.DataFrame,
    view: FeatureView,
    *,
    threshold: float = 0.25,
    min_rows: int = 50,
    bins: int = 10,
) -> DriftReport:
    """Compare every feature of ``view`` between the previous and the new materialization.

    Args:
        previous: The previous materialization (the reference); needs the view's feature columns.
        current: The new materialization; needs the same columns.
        view: The feature view both frames materialize.
        threshold: A feature whose PSI is above this fails the gate; must be a finite number > 0.
        min_rows: When either frame has fewer rows, no PSI is computed (it would be noise): every
            feature gets ``psi=None`` and a note, and the gate passes. At least 1.
        bins: Passed to ``population_stability_index``.

    Returns:
        The report, one ``FeatureDrift`` per feature in declaration order. A feature null on
        every row of both frames has PSI 0.

    Raises:
        FeatureStoreError: (a ``ValueError``) when ``threshold`` or ``min_rows`` is invalid, a
            feature column is missing from either frame, or a feature's two columns have dtypes
            that cannot be compared.
    """
    subject = f"drift gate of {view.name!r}"
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, int | float)
        or not math.isfinite(threshold)
        or threshold <= 0
    ):
        raise FeatureStoreError(
            subject,
            f"threshold must be a finite number > 0, got {threshold!r}",
            "Use a PSI threshold such as 0.25 (significant shift) or 0.1 (stricter).",
        )
    if isinstance(min_rows, bool) or not isinstance(min_rows, int) or min_rows < 1:
        raise FeatureStoreError(
            subject, f"min_rows must be an int >= 1, got {min_rows!r}", "Use e.g. min_rows=50."
        )
    names = view.feature_names
    for label, frame in (("previous", previous), ("current", current)):
        missing = [name for name in names if name not in frame.columns]
        if missing:
            raise FeatureStoreError(
                f"{label} materialization of {view.name!r}",
                f"missing feature columns {', '.join(missing)} (has {', '.join(frame.columns) or 'none'})",
                "Pass frames holding every feature column of the view.",
            )
    rows_expected, rows_actual = previous.height, current.height
    sides = (("previous", rows_expected), ("current", rows_actual))
    few = [(label, n) for label, n in sides if n < min_rows]
    results = []
    for name in names:
        if few:
            shortfall = ", ".join(f"{label} {n} < {min_rows}" for label, n in few)
            note = f"too few rows to compare ({shortfall})"
            results.append(FeatureDrift(name, None, rows_expected, rows_actual, note))
            continue
        expected, actual = previous[name], current[name]
        psi = population_stability_index(expected, actual, bins=bins)
        both_null = expected.null_count() == rows_expected and actual.null_count() == rows_actual
        note = "null on every row of both materializations" if both_null else ""
        results.append(FeatureDrift(name, psi, rows_expected, rows_actual, note))
    return DriftReport(view=view.name, threshold=float(threshold), features=tuple(results))


def _kind(series: pl.Series, label: str, subject: str) -> str:
    dtype = series.dtype
    if dtype == pl.Null:
        return _NULL
    if dtype.is_numeric():
        return _NUMERIC
    if dtype == pl.Boolean:
        return _BOOL
    if dtype in (pl.String, pl.Categorical) or isinstance(dtype, pl.Enum):
        return _STRING
    raise FeatureStoreError(
        subject,
        f"the {label} series has dtype {dtype}, which drift cannot be measured on",
        "Compare numeric, string or boolean columns (the dtypes a feature may declare).",
    )


def _numeric_counts(expected: pl.Series, actual: pl.Series, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Row counts per bin of both sides; the last bin is the null (and NaN) bin."""
    sides = []
    for series in (expected, actual):
        values = series.cast(pl.Float64).fill_nan(None)
        sides.append((values.drop_nulls().to_numpy(), values.null_count()))
    (expected_values, expected_nulls), (actual_values, actual_nulls) = sides

    distinct = np.unique(expected_values)
    if distinct.size <= bins:
        # Bin 2j+1 is exactly distinct[j]; bin 2j is the open gap just below it; bin 2k is above all.
        def assign(values: np.ndarray) -> np.ndarray:
            return np.searchsorted(distinct, values, "left") + np.searchsorted(distinct, values, "right")

        n_bins = 2 * distinct.size + 1
    else:
        # "lower" keeps the edges actual data values (no interpolation between +/-inf).
        quantiles = np.quantile(expected_values, np.arange(1, bins) / bins, method="lower")
        edges = np.unique(quantiles)

        def assign(values: np.ndarray) -> np.ndarray:
            return np.searchsorted(edges, values, "left")  # bins are right-closed: (edge_{i-1}, edge_i]

        n_bins = edges.size + 1
    counts = [
        np.append(np.bincount(assign(values), minlength=n_bins), nulls)
        for values, nulls in ((expected_values, expected_nulls), (actual_values, actual_nulls))
    ]
    return counts[0], counts[1]


def _category_counts(expected: pl.Series, actual: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """Row counts per category (nulls being one) over the union of both sides' categories."""
    tallies = []
    for series in (expected, actual):
        frame = pl.DataFrame({"value": series.cast(pl.String)}).group_by("value").len()
        tallies.append(dict(zip(frame["value"].to_list(), frame["len"].to_list(), strict=True)))
    # Sorted (null last) so the sum runs in the same order on every call.
    categories = sorted(tallies[0].keys() | tallies[1].keys(), key=lambda c: (c is None, c or ""))
    counts = [np.array([tally.get(c, 0) for c in categories], dtype=np.int64) for tally in tallies]
    return counts[0], counts[1]
