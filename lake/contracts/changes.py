"""Schema changes of events' properties as they landed, per tracking-plan version (issue 19, point 3).

Every landed line is validated against one version of the tracking plan, and bronze and quarantine
rows record that version. Over a window of landing hours this module counts, per plan version,
event, property and JSON type, the lines that carried it (bronze rows and quarantined lines alike: a
retyped property is usually quarantined as ``datatype_mismatch``), and reports three kinds of change:

- ``new``: a property the plan of that version does not know was sent;
- ``missing``: a property the plan knows (or the previous version's lines carried) is on none of
  the event's lines under this version;
- ``retyped``: a property arrived with a JSON type its planned type does not accept (or, when the
  plan of that version cannot be read, a type the previous version's lines did not use).

Example::

    report = schema_changes(paths, hours, plan=load_plan())
    print(report.render())

The per-hour gates (``schema_drift_at_landing``, ``quarantine_rate_within_history``) decide whether an
hour publishes; this report is what a tracking-plan owner reads to see what a client release changed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from lake import delta_io
from lake.contracts.plan import TrackingPlan
from lake.ledger import read_ledger
from lake.paths import LakePaths
from lake.schemas import BRONZE_EVENTS, BRONZE_QUARANTINE

__all__ = ["PropertyChange", "SchemaChanges", "schema_changes", "accepted_json_types"]

# The JSON types (as DuckDB's json_type names them) each planned type accepts; the line validator
# accepts an integer where a number is planned, never a boolean for either.
_ACCEPTS: dict[str, frozenset[str]] = {
    "string": frozenset({"VARCHAR"}),
    "integer": frozenset({"UBIGINT", "BIGINT"}),
    "number": frozenset({"UBIGINT", "BIGINT", "DOUBLE"}),
    "boolean": frozenset({"BOOLEAN"}),
}
_READABLE = {"VARCHAR": "string", "UBIGINT": "integer", "BIGINT": "integer", "DOUBLE": "number",
             "BOOLEAN": "boolean", "NULL": "null", "OBJECT": "object", "ARRAY": "array"}


def accepted_json_types(planned_type: str) -> frozenset[str]:
    """The DuckDB ``json_type`` names a property of ``planned_type`` may arrive as (null is always allowed)."""
    return _ACCEPTS[planned_type] | {"NULL"}


@dataclass(frozen=True)
class PropertyChange:
    """One change of one property of one event, under one plan version."""

    plan_version: str
    event: str
    prop: str
    kind: str  # new | missing | retyped
    lines: int  # lines of the event carrying the change (0 for missing)
    event_lines: int  # lines of the event under this plan version in the window
    detail: str
    first_hour: str | None = None

    def __str__(self) -> str:
        where = f", first in {self.first_hour}" if self.first_hour else ""
        return f"{self.kind:8} {self.event}.{self.prop}: {self.detail}{where}"


@dataclass
class SchemaChanges:
    """The changes of a window of landing hours, by plan version (oldest version first)."""

    hours: tuple[str, ...]
    lines_by_version: dict[str, int] = field(default_factory=dict)
    changes: list[PropertyChange] = field(default_factory=list)
    plans_unknown: tuple[str, ...] = ()
    not_listed: dict[str, int] = field(default_factory=dict)  # version -> stray changes under min_share
    unplanned_events: dict[str, list[str]] = field(default_factory=dict)  # version -> events its plan lacks

    def of_kind(self, kind: str) -> list[PropertyChange]:
        return [c for c in self.changes if c.kind == kind]

    def render(self) -> str:
        if not self.hours:
            return "no landing hour in the window"
        head = f"schema changes of {len(self.hours)} landing hour(s), {self.hours[0]} .. {self.hours[-1]}"
        out = [head]
        for version, lines in self.lines_by_version.items():
            mine = [c for c in self.changes if c.plan_version == version]
            known = "" if version not in self.plans_unknown else " (plan of this version not readable: compared " \
                                                                  "with the previous version's lines)"
            out.append(f"plan {version}: {lines:,} lines, {len(mine)} change(s){known}")
            out += [f"  {c}" for c in mine]
            if self.not_listed.get(version):
                out.append(f"  ({self.not_listed[version]} more on under the minimum share of their event's lines: "
                           "stray faulty lines, quarantined one by one; not listed)")
            if self.unplanned_events.get(version):
                out.append(f"  (events not in plan {version}, quarantined as unplanned_event: "
                           f"{', '.join(self.unplanned_events[version])})")
        return "\n".join(out)


def _semver(version: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in version.split("."))
    except ValueError:
        return (0,)


def schema_changes(paths: LakePaths, hours: Iterable[str], *, plan: TrackingPlan,
                   plan_for_version: Callable[[str], TrackingPlan | None] | None = None,
                   min_share: float = 0.01) -> SchemaChanges:
    """Count the properties the window's lines carried, per plan version, and report what changed.

    Args:
        paths: the lake.
        hours: landing partition keys (``YYYY-MM-DD-HH:00``) of the window.
        plan: the current tracking plan (used for lines validated against its version).
        plan_for_version: the plan of another version, or None when it cannot be read (default:
            only the current plan is known).
        min_share: a new or retyped property on fewer of its event's lines than this is a stray
            faulty line (quarantined one by one), counted but not listed; events the version's plan
            does not know are named once, not property by property.
    """
    keys = sorted(set(hours))
    report = SchemaChanges(hours=tuple(keys))
    if not keys:
        return report
    ledger = read_ledger(paths, keys)
    dates = sorted({d for ds in ledger.column("event_dates").to_pylist() for d in (ds or [])})
    landing_dates = sorted(set(ledger.column("landing_date").to_pylist()))
    bronze = delta_io.read(paths.bronze_events, BRONZE_EVENTS,
                           columns=["plan_version", "event_name", "properties", "_landing_partition"],
                           partitions=[("event_date", "in", dates)],
                           filter=pc.field("_landing_partition").isin(keys)) if dates else None
    quarantine = delta_io.read(paths.bronze_quarantine, BRONZE_QUARANTINE,
                               columns=["plan_version", "event_name", "raw_line", "landing_partition"],
                               partitions=[("landing_date", "in", landing_dates)],
                               filter=pc.field("landing_partition").isin(keys)) if landing_dates else None
    counts, events = _count(bronze, quarantine)

    versions = sorted({v for v, _e in events}, key=_semver)
    for version in versions:
        report.lines_by_version[version] = sum(n for (v, _e), (n, _h) in events.items() if v == version)
    previous: str | None = None
    unknown: list[str] = []
    for version in versions:
        vplan = plan if version == plan.version else (plan_for_version(version) if plan_for_version else None)
        if vplan is None:
            unknown.append(version)
        for change in _changes_of_version(version, vplan, counts, events, previous):
            if vplan is not None and change.event not in vplan.events:
                names = report.unplanned_events.setdefault(version, [])
                if change.event not in names:
                    names.append(change.event)
            elif change.kind != "missing" and change.lines < min_share * change.event_lines:
                report.not_listed[version] = report.not_listed.get(version, 0) + 1
            else:
                report.changes.append(change)
        previous = version
    report.plans_unknown = tuple(unknown)
    return report


# (version, event, prop) -> json type -> (lines, first hour)
_Counts = dict[tuple[str, str, str], dict[str, tuple[int, str]]]
_Events = dict[tuple[str, str], tuple[int, str]]


def _count(bronze: pa.Table | None, quarantine: pa.Table | None) -> tuple[_Counts, _Events]:
    """One DuckDB pass over the window's bronze rows and quarantined lines."""
    import duckdb

    con = duckdb.connect()
    try:
        parts = []
        if bronze is not None and bronze.num_rows:
            con.register("bronze", bronze)
            parts.append("select plan_version, event_name, properties::json as props, _landing_partition as hour "
                         "from bronze")
        if quarantine is not None and quarantine.num_rows:
            con.register("quarantine", quarantine)
            parts.append("select plan_version, event_name, json_extract(raw_line, '$.properties') as props, "
                         "landing_partition as hour from quarantine where event_name is not null "
                         "and json_valid(raw_line)")
        if not parts:
            return {}, {}
        con.execute(f"create temp table lines as {' union all '.join(parts)}")
        events = {(v, e): (int(n), h) for v, e, n, h in con.execute(
            "select plan_version, event_name, count(*), min(hour) from lines group by all").fetchall()}
        rows = con.execute("""
            with keyed as (
                select plan_version, event_name, hour, props, unnest(json_keys(props)) as prop
                from lines where json_type(props) = 'OBJECT'
            )
            select plan_version, event_name, prop, json_type(props, '$."' || replace(prop, '"', '\\"') || '"') as t,
                   count(*), min(hour)
            from keyed group by all
        """).fetchall()
    finally:
        con.close()
    counts: _Counts = {}
    for version, event, prop, json_type, n, first in rows:
        counts.setdefault((version, event, prop), {})[json_type or "NULL"] = (int(n), first)
    return counts, events


def _changes_of_version(version: str, plan: TrackingPlan | None, counts: _Counts, events: _Events,
                        previous: str | None) -> list[PropertyChange]:
    out: list[PropertyChange] = []
    for (v, event), (event_lines, _first) in sorted(events.items()):
        if v != version:
            continue
        seen = {prop: types for (vv, e, prop), types in counts.items() if vv == version and e == event}
        before = ({prop: types for (vv, e, prop), types in counts.items() if vv == previous and e == event}
                  if previous else {})
        spec = plan.events.get(event) if plan is not None else None
        planned: Mapping[str, str] | None = ({p: s.type for p, s in spec.properties.items()} if spec is not None
                                             else None if plan is None else {})
        for prop, types in sorted(seen.items()):
            lines = sum(n for n, _h in types.values())
            first = min(h for _n, h in types.values())
            share = f"on {lines:,} of {event_lines:,} lines ({lines / event_lines:.0%})"
            if planned is not None and prop not in planned:
                out.append(PropertyChange(version, event, prop, "new", lines, event_lines,
                                          f"not in plan {version}; {share}", first))
                continue
            if planned is None and before and prop not in before:
                out.append(PropertyChange(version, event, prop, "new", lines, event_lines,
                                          f"not sent under plan {previous}; {share}", first))
                continue
            if planned is not None:
                expected, accepted = planned[prop], accepted_json_types(planned[prop])
            elif prop in before:
                usual = max(before[prop].items(), key=lambda kv: kv[1][0])[0]
                expected, accepted = _READABLE.get(usual, usual.lower()), frozenset({usual, "NULL"})
            else:
                continue
            foreign = {t: nh for t, nh in types.items() if t not in accepted}
            if foreign:
                n = sum(x for x, _h in foreign.values())
                sent = ", ".join(f"{_READABLE.get(t, t.lower())} on {x:,}" for t, (x, _h) in
                                 sorted(foreign.items(), key=lambda kv: -kv[1][0]))
                out.append(PropertyChange(version, event, prop, "retyped", n, event_lines,
                                          f"{expected} expected, sent as {sent} of {event_lines:,} lines "
                                          f"({n / event_lines:.0%})", min(h for _x, h in foreign.values())))
        # Missing: what the previous version's lines carried, or what the plan requires. An optional
        # property that no line has carried under either version is no change.
        required = set(spec.required) if spec is not None else set()
        for prop in sorted((set(before) | required) - set(seen)):
            why = (f"on {sum(n for n, _h in before[prop].values()):,} lines under plan {previous}" if prop in before
                   else f"required by plan {version}")
            out.append(PropertyChange(version, event, prop, "missing", 0, event_lines,
                                      f"{why}; on none of {event_lines:,} lines"))
    return out
