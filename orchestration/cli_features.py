"""``growthlake features …``: inspect views, read values online or as of a moment, materialize days."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

from lake.errors import GrowthlakeError
from orchestration.cli_settings import READ, UPDATE

__all__ = ["add_parser", "complete_days", "materialize_days"]


def _describe_aggregation(agg) -> str:
    if agg is None:
        return "-"
    args = [f"{agg.column} / {agg.denominator}" if agg.denominator else agg.column] if agg.column else []
    if agg.window_days:
        args.append(f"{agg.window_days}d")
    state = f" while {agg.state[0]}={agg.state[1]}" if agg.state else ""
    default = f" default {agg.default!r}" if agg.default is not None else ""
    return f"{agg.kind}({', '.join(args)}){state}{default}"


def _store(args: argparse.Namespace):
    from growth_loops.features import FeatureStore
    from lake.paths import LakePaths

    return FeatureStore(LakePaths.from_root(args.root))


def _cmd_list(args: argparse.Namespace) -> int:
    store = _store(args)
    print(f"{'view':<16}{'features':>9}  {'source':<16}{'consent':<10}{'ttl':>6}  {'last day':<11}{'online rows':>12}")
    for view in store.views:
        days = store.published_days(view)
        online = store.online.row_count(view)
        print(f"{view.name:<16}{len(view.features):>9}  {view.source:<16}{view.requires_consent:<10}"
              f"{_hours(view.ttl):>6}  {days[-1].isoformat() if days else '-':<11}{online:>12,}")
    store.close()
    return 0


def _hours(ttl: timedelta) -> str:
    hours = ttl.total_seconds() / 3600
    return f"{hours / 24:g}d" if hours % 24 == 0 else f"{hours:g}h"


def _cmd_show(args: argparse.Namespace) -> int:
    store = _store(args)
    view = store.view(args.view)
    print(f"{view.name}: {view.description}")
    print(f"  entity {view.entity}, source {view.source}, owner {view.owner}, ttl {_hours(view.ttl)}, "
          f"requires {view.requires_consent} consent")
    print(f"  population: people active in the last {view.population_days} days; "
          f"drift gate: PSI > {view.drift_threshold} blocks publishing")
    print(f"\n  {'feature':<28}{'dtype':<9}{'aggregation':<52}description")
    for f in view.features:
        print(f"  {f.name:<28}{f.dtype:<9}{_describe_aggregation(f.aggregation):<52}{f.description}")
    days = store.published_days(view)
    print(f"\n  offline history: {len(days)} day(s)" + (f", {days[0]} .. {days[-1]}" if days else ""))
    print(f"  online store: {store.online.row_count(view):,} people, newest values valid from "
          f"{store.online.latest_valid_from(view) or '-'}")
    log = store.materializations(view.name).head(args.last)
    if log.height:
        print(f"\n  last {log.height} materialization(s):")
        print(f"  {'day':<12}{'status':<11}{'people':>8}  {'gx':<5}{'max psi':>8}  at")
        for r in log.iter_rows(named=True):
            psi = "-" if r["drift_max_psi"] is None else f"{r['drift_max_psi']:.3f}"
            gx = "ok" if r["gx_passed"] else "FAIL"
            print(f"  {r['day'].isoformat():<12}{r['status']:<11}{r['rows']:>8,}  {gx:<5}"
                  f"{psi:>8}  {r['materialized_at']:%Y-%m-%d %H:%M:%S}Z"
                  + (" drift accepted" if r["drift_accepted"] else ""))
    store.close()
    return 0


def _moment(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a timestamp like 2026-11-02T12:00:00Z") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{value!r} has no time zone: add Z (UTC) or an offset like +01:00")
    return moment


def _cmd_get(args: argparse.Namespace) -> int:
    import polars as pl

    store = _store(args)
    views = [store.view(v) for v in args.view] if args.view else list(store.views)
    if args.at is None:
        frame = store.get_online_features([args.entity], views)
        source = "online store, now"
    else:
        lookups = pl.DataFrame({"person_id": [args.entity], "event_timestamp": [args.at]},
                               schema={"person_id": pl.String, "event_timestamp": pl.Datetime("us", "UTC")})
        frame = store.get_historical_features(lookups, views).drop("event_timestamp")
        source = f"offline history, as of {args.at.isoformat()}"
    row = frame.row(0, named=True)
    store.close()
    if args.json:
        print(json.dumps(row, default=str, indent=2))
        return 0
    print(f"{args.entity} ({source})")
    for view in views:
        print(f"  {view.name}")
        for name in view.feature_names:
            value = row[name]
            print(f"    {name:<28}{'null' if value is None else value}")
    if all(row[n] is None for v in views for n in v.feature_names):
        print("  no values: unknown person, inactive beyond the population window, expired, or not yet materialized",
              file=sys.stderr)
        return 1
    return 0


def complete_days(hour_keys: Sequence[str], *, through: datetime) -> list[date]:
    """The days spanned by hourly partition keys that had ended by ``through`` (an aware UTC time:
    the end of the hours covered). A day counts once it has ended, whether or not its last hours
    had landed events (a quiet night has no landing folders)."""
    if not hour_keys:
        return []
    first, last = date.fromisoformat(hour_keys[0][:10]), date.fromisoformat(hour_keys[-1][:10])
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    return [d for d in days if datetime.combine(d + timedelta(days=1), datetime.min.time(), tzinfo=UTC) <= through]


def materialize_days(defs, instance, days: Sequence[date], *, accept_drift: bool = False,
                     drift_threshold: float | None = None, log_level: str = "WARNING") -> list[str]:
    """Run the nightly feature job for each day (in order); return the days whose gates failed."""
    job = defs.resolve_job_def("nightly_features")
    failed: list[str] = []
    op_config = {"accept_drift": accept_drift, **({"drift_threshold": drift_threshold} if drift_threshold else {})}
    for day in days:
        t0 = time.perf_counter()
        res = job.execute_in_process(
            partition_key=day.isoformat(), instance=instance, raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": log_level}}},
                        "ops": {"materialize_features": {"config": op_config}}})
        checks = res.get_asset_check_evaluations()
        bad = [c.check_name for c in checks if not c.passed]
        statuses = {}
        for event in res.get_asset_materialization_events():
            meta = event.materialization.metadata
            statuses[event.asset_key.path[-1]] = (meta["status"].value, meta["people"].value)
        if not res.success or bad:
            failed.append(day.isoformat())
        shown = "  ".join(f"{v} {s} ({n:,})" for v, (s, n) in statuses.items())
        verdict = "FAILED: " + ", ".join(bad or ["run"]) if bad or not res.success else "gates ok"
        print(f"features {day}  {shown}  {verdict}  {time.perf_counter() - t0:.2f}s", flush=True)
    return failed


def _cmd_materialize(args: argparse.Namespace) -> int:
    from lake.paths import LakePaths
    from orchestration.cli import _instance
    from orchestration.definitions import build_definitions
    from orchestration.resources import LakeResource

    last = args.to or args.day
    if last < args.day:
        raise GrowthlakeError(f"--to {last} is before --day {args.day}: "
                              "give the first day with --day, the last with --to.")
    days = [args.day + timedelta(days=i) for i in range((last - args.day).days + 1)]
    today = datetime.now(UTC).date()
    if days[-1] >= today:
        raise GrowthlakeError(f"{days[-1]} has not ended yet (today is {today} UTC): a day's features are valid "
                              "from its end, so materialize days up to yesterday.")
    paths = LakePaths.from_root(args.root)
    defs = build_definitions(lake=LakeResource(root=paths.root, tracking_plan=args.tracking_plan))
    failed = materialize_days(defs, _instance(args.settings), days, accept_drift=args.accept_drift,
                              drift_threshold=args.psi_threshold, log_level="INFO" if args.verbose else "WARNING")
    if failed:
        print(f"\n{len(failed)} day(s) held by a gate: {', '.join(failed)}. Nothing was published for them; "
              f"the values are under {paths.feature_holds}. See `growthlake features show <view>`; rerun with "
              "--accept-drift if the shift is a reviewed, real change.", file=sys.stderr)
        return 1
    return 0


def add_parser(sub, common: argparse.ArgumentParser, date_type) -> None:
    f = sub.add_parser("features", help="feature store: list views, show one, get a person's values, materialize days")
    fsub = f.add_subparsers(dest="features_verb", required=True)
    ls = fsub.add_parser("list", parents=[common], help="every feature view with its last materialized day")
    ls.set_defaults(fn=_cmd_list, needs=READ)
    sh = fsub.add_parser("show", parents=[common], help="a view's declaration, storage and recent materializations")
    sh.add_argument("view")
    sh.add_argument("--last", type=int, default=10, help="materializations to list (default 10)")
    sh.set_defaults(fn=_cmd_show, needs=READ)
    g = fsub.add_parser("get", parents=[common], help="a person's feature values: online (now) or as of --at")
    g.add_argument("entity", help="person_id (a user id, or anon:<anonymous_id>)")
    g.add_argument("--at", type=_moment, help="point in time (RFC 3339, e.g. 2026-11-02T12:00:00Z): read the "
                                              "offline history as it was then")
    g.add_argument("--view", action="append", help="only this view (repeatable)")
    g.add_argument("--json", action="store_true", help="print one JSON object")
    g.set_defaults(fn=_cmd_get, needs=READ)
    m = fsub.add_parser("materialize", parents=[common], help="materialize days through Dagster (gated, idempotent)")
    m.add_argument("--day", type=date_type, required=True, help="first day (YYYY-MM-DD)")
    m.add_argument("--to", type=date_type, help="last day, inclusive (default: --day)")
    m.add_argument("--accept-drift", action="store_true", help="publish despite drift above the threshold (recorded)")
    m.add_argument("--psi-threshold", type=float, help="override every view's drift threshold for this run")
    m.add_argument("-v", "--verbose", action="store_true", help="show Dagster's step logs")
    m.set_defaults(fn=_cmd_materialize, needs=UPDATE)
