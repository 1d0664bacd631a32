"""The metric layer: every outcome measured, defined once and shared by the marts and the loops.

The spec lives in ``dbt_project/dbt_project.yml`` (var ``metric_layer``); dbt compiles its measures
to SQL (``macros/metric_layer.sql``) for the marts, and this package compiles the same entries to
polars expressions for the loops' experiments, guardrails and bandits:

* ``load_metric_layer`` — the spec (``Measure``, ``Metric``, ``MetricLayer``), read when asked;
* ``unit_values`` / ``mature_units`` / ``metric_stats`` — a unit metric per unit over its window,
  and its sufficient statistics for ``experiments`` and ``loops.guardrails``;
* ``person_days`` and ``daily_oec`` — the marts' person-days and OEC, from the same definitions.
"""

from growth_loops.metrics.compile import (
    daily_oec,
    mature_units,
    measure_aggregate,
    measure_condition,
    metric_stats,
    person_days,
    unit_values,
)
from growth_loops.metrics.errors import MetricError
from growth_loops.metrics.spec import Measure, Metric, MetricLayer, load_metric_layer

__all__ = [
    "Measure",
    "Metric",
    "MetricError",
    "MetricLayer",
    "daily_oec",
    "load_metric_layer",
    "mature_units",
    "measure_aggregate",
    "measure_condition",
    "metric_stats",
    "person_days",
    "unit_values",
]
