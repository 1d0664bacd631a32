"""The feature store: offline history in Delta, latest values online, gated before publishing.

``FeatureStore.materialize(day)`` is the nightly job's body (the Dagster asset only wires it):

1. bring the daily rollups up to date — a rollup day is rebuilt only when the silver files of
   that day changed (fingerprint of the Delta add actions), so a nightly run reads one new day
   of silver, not the history;
2. per view, compute the day's values (``compute.py``), valid from the end of the day;
3. gate them before anyone can read them: the view's Great Expectations suite, and the
   population stability index of every feature against the previous materialization;
4. publish: replace the day's partition of the view's Delta history (skipped when the values are
   identical, so materializing a day twice changes nothing), then upsert the online store;
   a gate failure publishes nothing and keeps the values under ``audit/held/features``;
5. append the attempt to the materialization log.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from growth_loops.features import pit
from growth_loops.features.catalog import VIEWS, check_catalog, get_view
from growth_loops.features.compute import ACTIVITY_COLUMNS, DAY, compute_view
from growth_loops.features.drift import DriftReport, drift_report
from growth_loops.features.errors import FeatureStoreError
from growth_loops.features.online import OnlineStore
from growth_loops.features.rollups import ROLLUP_SOURCES, RollupSource
from growth_loops.features.views import FeatureView
from lake import delta_io
from lake.locks import table_lock
from lake.paths import LakePaths
from lake.schemas import SILVER_EVENTS, SILVER_SESSIONS

__all__ = ["MATERIALIZATIONS", "FeatureStore", "Materialization", "view_schema"]

log = logging.getLogger(__name__)

_TS = pa.timestamp("us", tz="UTC")
_ARROW = {"int64": pa.int64(), "float64": pa.float64(), "string": pa.string(), "bool": pa.bool_()}
_SILVER_SCHEMAS = {"silver_events": SILVER_EVENTS, "silver_sessions": SILVER_SESSIONS}

ROLLUP_STATE = pa.schema(
    [
        pa.field("source", pa.string(), nullable=False),
        pa.field("day", pa.date32(), nullable=False),
        pa.field("fingerprint", pa.string(), nullable=False),  # sha256 of the day's silver file paths
        pa.field("rows", pa.int64(), nullable=False),
        pa.field("built_at", _TS, nullable=False),
    ]
)

MATERIALIZATIONS = pa.schema(
    [
        pa.field("view", pa.string(), nullable=False),
        pa.field("day", pa.date32(), nullable=False),
        pa.field("status", pa.string(), nullable=False),  # published | unchanged | held
        pa.field("rows", pa.int64(), nullable=False),
        pa.field("gx_passed", pa.bool_(), nullable=False),
        pa.field("gx_summary", pa.string(), nullable=False),
        pa.field("drift_passed", pa.bool_()),  # null: not compared (first day, warming up, too few rows)
        pa.field("drift_max_psi", pa.float64()),
        pa.field("drift_detail", pa.string(), nullable=False),  # JSON: psi per feature, threshold, notes
        pa.field("drift_accepted", pa.bool_(), nullable=False),  # an operator published despite drift
        pa.field("previous_day", pa.date32()),
        pa.field("delta_version", pa.int64()),
        pa.field("materialized_at", _TS, nullable=False),
    ]
)


def view_schema(view: FeatureView) -> pa.Schema:
    """Arrow schema of a view's offline history."""
    return pa.schema(
        [
            pa.field(view.entity, pa.string(), nullable=False),
            pa.field(pit.VALID_FROM, _TS, nullable=False),
            pa.field(DAY, pa.date32(), nullable=False),
            *(pa.field(f.name, _ARROW[f.dtype]) for f in view.features),
        ]
    )


Status = Literal["published", "unchanged", "held"]


@dataclass(frozen=True)
class Materialization:
    """What one view's materialization of one day did.

    Attributes:
        view: The view's name.
        day: The materialized day.
        status: ``published`` (the day's values are new or changed and now readable),
            ``unchanged`` (identical to what was published: nothing written), or ``held``
            (a gate failed: nothing published, values kept under ``audit/held/features``).
        rows: People materialized.
        gx_passed / gx_summary: The Great Expectations verdict.
        drift: The drift report, or None when not compared (see ``drift_note``).
        drift_note: Why drift was not compared, or ``""``.
        drift_accepted: Drift was above the threshold and the operator accepted it.
        previous_day: The materialization drift was compared with.
        delta_version: Version of the view's Delta table after this run.
        online_rows: Online rows inserted or replaced.
    """

    view: str
    day: datetime.date
    status: Status
    rows: int
    gx_passed: bool
    gx_summary: str
    drift: DriftReport | None
    drift_note: str = ""
    drift_accepted: bool = False
    previous_day: datetime.date | None = None
    delta_version: int | None = None
    online_rows: int = 0
    held_path: str | None = field(default=None)

    @property
    def passed(self) -> bool:
        return self.status != "held"

    @property
    def drift_passed(self) -> bool | None:
        return None if self.drift is None or self.drift.max_psi is None else self.drift.passed

    def summary(self) -> str:
        drift = self.drift.summary() if self.drift is not None else f"drift not compared ({self.drift_note})"
        accepted = " (accepted by the operator)" if self.drift_accepted else ""
        return (f"{self.view} {self.day}: {self.status}, {self.rows} people; GX: {self.gx_summary}; "
                f"{drift}{accepted}")


class FeatureStore:
    """Materialize and read the declared feature views of one lake.

    Args:
        paths: The lake (or its root).
        views: The views served; the catalog's by default.
    """

    def __init__(self, paths: LakePaths | str | os.PathLike[str] | None = None,
                 views: Sequence[FeatureView] = VIEWS) -> None:
        self.paths = paths if isinstance(paths, LakePaths) else LakePaths.from_root(paths)
        self.views = tuple(views)
        check_catalog(self.views)
        for view in self.views:
            if view.source not in ROLLUP_SOURCES:
                raise FeatureStoreError(
                    f"feature view {view.name!r}", f"source {view.source!r} has no rollup",
                    f"Use one of {', '.join(ROLLUP_SOURCES)}, or add a RollupSource in rollups.py.",
                )
        self._online: OnlineStore | None = None

    # -- reading ---------------------------------------------------------------------------------
    def view(self, name: str) -> FeatureView:
        for view in self.views:
            if view.name == name:
                return view
        return get_view(name)

    @property
    def online(self) -> OnlineStore:
        if self._online is None:
            self._online = OnlineStore(self.paths.online_store)
        return self._online

    def close(self) -> None:
        if self._online is not None:
            self._online.close()
            self._online = None

    def history(self, view: FeatureView | str, *, entity_ids: Iterable[str] | None = None,
                days: Sequence[datetime.date] | None = None) -> pl.DataFrame:
        """A view's offline history (every published day), optionally for some people or days."""
        view = self.view(view) if isinstance(view, str) else view
        flt = None
        if entity_ids is not None:
            flt = pc.field(view.entity).isin(pa.array(sorted(set(entity_ids)), pa.string()))
        parts = [(DAY, "in", list(days))] if days is not None else None
        if days is not None and not days:
            return pl.from_arrow(view_schema(view).empty_table())  # type: ignore[return-value]
        table = delta_io.read(self.paths.feature_view(view.name), view_schema(view), filter=flt, partitions=parts)
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        return frame.sort(DAY, view.entity)

    def published_days(self, view: FeatureView | str) -> list[datetime.date]:
        """Days whose values are in the view's history, oldest first."""
        view = self.view(view) if isinstance(view, str) else view
        dt = delta_io.open_table(self.paths.feature_view(view.name))
        if dt is None:
            return []
        return sorted(datetime.date.fromisoformat(p[DAY]) for p in dt.partitions())

    def get_historical_features(self, entity_df: pl.DataFrame, views: Sequence[FeatureView | str] | None = None, *,
                                entity_column: str = "person_id",
                                timestamp_column: str = "event_timestamp") -> pl.DataFrame:
        """Point-in-time training rows: each lookup gets the values valid at its timestamp, never later ones.

        Reads only the history of the people in ``entity_df``; see ``pit.get_historical_features``
        for the exact rules (TTL, ties, nulls).
        """
        chosen = [self.view(v) if isinstance(v, str) else v for v in (views or self.views)]
        ids = (entity_df.get_column(entity_column).drop_nulls().unique().to_list()
               if entity_column in entity_df.columns else [])
        out = entity_df
        for view in chosen:
            history = self.history(view, entity_ids=ids).drop(DAY)
            out = pit.get_historical_features(out, history, view, entity_column=entity_column,
                                              timestamp_column=timestamp_column)
        return out

    def get_online_features(self, entity_ids: Sequence[str], views: Sequence[FeatureView | str] | None = None, *,
                            now: datetime.datetime | None = None) -> pl.DataFrame:
        """The latest values per person (null when absent, expired by TTL, or withheld for consent)."""
        chosen = [self.view(v) if isinstance(v, str) else v for v in (views or self.views)]
        return self.online.get_online_features(entity_ids, chosen, now=now)

    def materializations(self, view: str | None = None) -> pl.DataFrame:
        """The materialization log, newest first."""
        flt = pc.field("view") == view if view else None
        table = delta_io.read(self.paths.feature_materializations, MATERIALIZATIONS, filter=flt)
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        return frame.sort("materialized_at", descending=True)

    # -- writing ---------------------------------------------------------------------------------
    def materialize(self, day: datetime.date, *, views: Sequence[FeatureView | str] | None = None,
                    accept_drift: bool = False, drift_threshold: float | None = None) -> list[Materialization]:
        """Materialize ``day`` for the views (all by default); see the module docstring.

        Args:
            day: The day whose end the values describe.
            views: Which views.
            accept_drift: Publish even when drift is above the threshold (a reviewed, real change
                of behaviour); recorded in the log. Great Expectations failures are never overridden.
            drift_threshold: Overrides every view's ``drift_threshold`` for this run.
        """
        chosen = [self.view(v) if isinstance(v, str) else v for v in (views or self.views)]
        with table_lock(self.paths, "features"):
            self.refresh_rollups(through=day)
            activity = self._read_rollup("silver.events", ACTIVITY_COLUMNS, through=day)
            first = activity.filter(pl.col("events") > 0)[DAY].min()  # first day with activity, or None
            assert first is None or isinstance(first, datetime.date)
            results = []
            for view in chosen:
                results.append(self._materialize_view(view, day, activity, first_day=first,
                                                      accept_drift=accept_drift, drift_threshold=drift_threshold))
            self._log(results)
        return results

    def refresh_rollups(self, *, through: datetime.date) -> dict[str, list[datetime.date]]:
        """Rebuild the rollup days (``<= through``) whose silver files changed since they were built.

        Returns:
            The rebuilt days per source name.
        """
        state = self._rollup_state_rows()
        rebuilt: dict[str, list[datetime.date]] = {}
        new_state: dict[tuple[str, datetime.date], tuple[str, int, datetime.datetime]] = {}
        now = datetime.datetime.now(datetime.UTC)
        for source in {ROLLUP_SOURCES[v.source] for v in self.views} | {ROLLUP_SOURCES["silver.events"]}:
            fingerprints = _day_fingerprints(getattr(self.paths, source.table), source.date_column)
            known = {d: f for (s, d), (f, _, _) in state.items() if s == source.source}
            days = sorted(d for d in set(fingerprints) | set(known) if d <= through
                          and fingerprints.get(d, "") != known.get(d))
            rebuilt[source.source] = days
            if not days:
                continue
            frames = []
            for d in days:
                frame = (self._build_rollup_day(source, d) if d in fingerprints
                         else pl.from_arrow(source.schema.empty_table()))
                assert isinstance(frame, pl.DataFrame)
                frames.append(frame)
                new_state[(source.source, d)] = (fingerprints.get(d, ""), frame.height, now)
            data = pl.concat(frames).to_arrow().cast(source.schema)
            predicate = f"{DAY} IN ({', '.join(repr(d.isoformat()) for d in days)})"
            delta_io.replace_where(self.paths.feature_rollup(source.name), data, predicate, partition_by=[DAY],
                                   operation="feature-rollup", metadata={"days": [d.isoformat() for d in days]})
            log.info("rolled up %s for %d day(s): %s .. %s", source.source, len(days), days[0], days[-1])
        if new_state:
            merged = {**state, **new_state}
            table = pa.Table.from_pylist([{"source": s, "day": d, "fingerprint": f, "rows": r, "built_at": b}
                                          for (s, d), (f, r, b) in sorted(merged.items())], schema=ROLLUP_STATE)
            _overwrite(self.paths.feature_rollup_state, table)
        return rebuilt

    # -- internals -------------------------------------------------------------------------------
    def _materialize_view(self, view: FeatureView, day: datetime.date, activity: pl.DataFrame, *,
                          first_day: datetime.date | None, accept_drift: bool,
                          drift_threshold: float | None) -> Materialization:
        source = ROLLUP_SOURCES[view.source]
        columns = ("person_id", DAY, *sorted({c for f in view.features if f.aggregation
                                               for c in f.aggregation.columns if c not in ("person_id", DAY)}))
        if source.source == "silver.events" and set(columns) <= set(ACTIVITY_COLUMNS):
            rows = activity
        else:
            rows = self._read_rollup(source.source, columns, through=day)
        current = compute_view(view, day, source_rows=rows, activity=activity)

        from expectations import validate

        gx = validate(current, f"features_{view.name}") if current.height else None
        gx_passed = gx.success if gx else True
        gx_summary = gx.summary() if gx else "no rows to validate"

        previous_day = max((d for d in self.published_days(view) if d < day), default=None)
        report, note = None, ""
        if previous_day is None:
            note = "first materialization of this view"
        elif first_day is None or previous_day < (warm := first_day + datetime.timedelta(
                days=view.longest_window_days - 1)):
            note = (f"warming up: the {view.longest_window_days}-day windows fill on "
                    f"{warm if first_day else 'the first active day + window'}, so distributions before that "
                    "are not comparable")
        else:
            threshold = drift_threshold if drift_threshold is not None else view.drift_threshold
            report = drift_report(self.history(view, days=[previous_day]), current, view, threshold=threshold)
            if report.max_psi is None:
                note = "; ".join(f.note for f in report.features if f.note) or "not comparable"
        drifted = report is not None and not report.passed
        held = not gx_passed or (drifted and not accept_drift)
        table_uri = self.paths.feature_view(view.name)
        status: Status
        online_rows, held_path = 0, None
        if held:
            status = "held"
            held_path = self._hold(view, day, current)
        else:
            data = current.to_arrow().cast(view_schema(view))
            existing = self.history(view, days=[day])
            if existing.height == current.height and existing.equals(current):
                status = "unchanged"
            else:
                status = "published"
                delta_io.replace_where(table_uri, data, f"{DAY} = '{day.isoformat()}'", partition_by=[DAY],
                                       operation="feature-materialize",
                                       metadata={"view": view.name, "day": day.isoformat()})
            online_rows = self.online.write(view, current.drop(DAY))
        return Materialization(
            view=view.name, day=day, status=status, rows=current.height, gx_passed=gx_passed, gx_summary=gx_summary,
            drift=report, drift_note=note, drift_accepted=drifted and accept_drift and gx_passed,
            previous_day=previous_day, delta_version=delta_io.version(table_uri), online_rows=online_rows,
            held_path=held_path,
        )

    def _hold(self, view: FeatureView, day: datetime.date, frame: pl.DataFrame) -> str:
        if not self.paths.is_local:
            return ""
        folder = os.path.join(self.paths.feature_holds, view.name)
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f"{day.isoformat()}.parquet")
        frame.write_parquet(path)
        return path

    def _read_rollup(self, source: str, columns: Sequence[str], *, through: datetime.date) -> pl.DataFrame:
        src = ROLLUP_SOURCES[source]
        schema = pa.schema([src.schema.field(c) for c in columns])
        table = delta_io.read(self.paths.feature_rollup(src.name), src.schema, columns=list(columns),
                              filter=pads.field(DAY) <= pa.scalar(through, pa.date32()))
        return pl.from_arrow(table.cast(schema))  # type: ignore[return-value]

    def _build_rollup_day(self, source: RollupSource, day: datetime.date) -> pl.DataFrame:
        silver = delta_io.read(getattr(self.paths, source.table), _SILVER_SCHEMAS[source.table],
                               columns=list(source.columns), partitions=[(source.date_column, "=", day)])
        return source.build(pl.from_arrow(silver), day)  # type: ignore[arg-type]

    def _rollup_state_rows(self) -> dict[tuple[str, datetime.date], tuple[str, int, datetime.datetime]]:
        table = delta_io.read(self.paths.feature_rollup_state, ROLLUP_STATE)
        return {(r["source"], r["day"]): (r["fingerprint"], r["rows"], r["built_at"]) for r in table.to_pylist()}

    def _log(self, results: Sequence[Materialization]) -> None:
        now = datetime.datetime.now(datetime.UTC)
        rows = [{
            "view": m.view, "day": m.day, "status": m.status, "rows": m.rows, "gx_passed": m.gx_passed,
            "gx_summary": m.gx_summary, "drift_passed": m.drift_passed,
            "drift_max_psi": m.drift.max_psi if m.drift else None,
            "drift_detail": json.dumps(m.drift.to_metadata() if m.drift else {"note": m.drift_note}),
            "drift_accepted": m.drift_accepted, "previous_day": m.previous_day, "delta_version": m.delta_version,
            "materialized_at": now,
        } for m in results]
        delta_io.append(self.paths.feature_materializations, pa.Table.from_pylist(rows, schema=MATERIALIZATIONS))


def _day_fingerprints(uri: str, date_column: str) -> dict[datetime.date, str]:
    """Per date partition, a hash of the files that hold it: it changes whenever the day's data does."""
    dt = delta_io.open_table(uri)
    if dt is None:
        return {}
    actions = pa.table(dt.get_add_actions(flatten=True))
    by_day: dict[datetime.date, list[str]] = {}
    days = actions.column(f"partition.{date_column}").to_pylist()
    for path, day in zip(actions.column("path").to_pylist(), days, strict=True):
        by_day.setdefault(day, []).append(path)
    return {d: hashlib.sha256("\n".join(sorted(p)).encode()).hexdigest() for d, p in by_day.items()}


def _overwrite(uri: str, table: pa.Table) -> None:
    from deltalake import write_deltalake

    dt = delta_io.open_table(uri)
    write_deltalake(dt if dt is not None else uri, table, mode="overwrite",
                    storage_options=None if dt is not None else delta_io.storage_options(uri))
