"""The ``growthlake`` command line: simulate, run, replay-quarantine, status, features, plan.

Heavy imports (Dagster, Great Expectations) happen inside the verbs that need them, so
``growthlake --help`` and ``growthlake status`` answer quickly.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, date, datetime, timedelta

from lake.errors import GrowthlakeError
from lake.settings import Settings
from orchestration.cli_settings import PII, PLAN, READ, UPDATE, WRITE, checked_settings

__all__ = ["closed_hours", "main", "partition_range"]


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date like 2026-11-02") from None


def _bound(value: str, option: str) -> datetime:
    """The start of the day or hour ``value`` names (a range bound); GrowthlakeError when it names neither."""
    from lake.ingest import parse_partition_key

    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), datetime.min.time(), tzinfo=UTC)
        return parse_partition_key(value)
    except (ValueError, GrowthlakeError):
        raise GrowthlakeError(f"{option} {value!r} is neither a date like 2026-11-02 nor an hour like "
                              "2026-11-02-05:00 (UTC).") from None


def partition_range_end(end: str) -> datetime:
    """The exclusive end of a range whose last day or hour is ``end``."""
    return _bound(end, "--to") + (timedelta(days=1) if len(end) == 10 else timedelta(hours=1))


def partition_range(start: str, end: str) -> list[str]:
    """Hourly keys from ``start`` to ``end`` inclusive; each is a date (whole day) or an hour key."""
    from lake.ingest import hour_keys

    lo, hi = _bound(start, "--from"), partition_range_end(end)
    if hi <= lo:
        raise GrowthlakeError(f"--from {start} is after --to {end}: give an increasing range.")
    return hour_keys(lo, hi)


def closed_hours(keys: list[str], *, ranged: bool, now: datetime | None = None) -> tuple[list[str], list[str]]:
    """Split hourly keys into those Dagster can run (closed hours) and those still open (this hour, or later).

    Raises:
        GrowthlakeError: a key precedes the first hourly partition, or (``ranged``) no hour of the
            range has closed yet.
    """
    from lake.ingest import parse_partition_key
    from orchestration.bronze.partitions import FIRST_HOUR

    current = (now or datetime.now(UTC)).replace(minute=0, second=0, microsecond=0)
    early = [k for k in keys if parse_partition_key(k) < FIRST_HOUR]
    if early:
        raise GrowthlakeError(f"{early[0]} is before the first hourly partition {FIRST_HOUR:%Y-%m-%d-%H:00} of the "
                              "Dagster assets: start the range on or after it.")
    closed = [k for k in keys if parse_partition_key(k) < current]
    still_open = [k for k in keys if parse_partition_key(k) >= current]
    if ranged and not closed:
        raise GrowthlakeError(f"{still_open[0]} is still open (the current hour is {current:%Y-%m-%d-%H:00} UTC): "
                              "an hour is ingested once it has closed; end the range at an earlier hour.")
    if not closed:
        raise GrowthlakeError(f"only the open hour {still_open[0]} has landed events: it is ingested once it closes "
                              f"at {current + timedelta(hours=1):%H:%M} UTC.")
    return closed, still_open


def _cmd_simulate(args: argparse.Namespace) -> int:
    from simulation import simulate

    summary = simulate(args.settings.root, users=args.users, days=args.days,
                       seed=args.seed, start=args.start, fault_rate=args.fault_rate)
    rate = summary.lines_written / summary.elapsed_s if summary.elapsed_s else 0.0
    print(f"simulated {summary.users} users over {summary.days} days from {summary.start} (seed {summary.seed}): "
          f"{summary.lines_written} lines in {summary.files_written} files, {summary.elapsed_s:.1f}s "
          f"({rate:,.0f} lines/s)")
    print(f"landing: {summary.landing_dir}")
    print("injected collector faults: " + ", ".join(f"{k}={v}" for k, v in sorted(summary.faults.items())))
    return 0


def _instance(settings: Settings | None = None):
    """The Dagster instance of ``$DAGSTER_HOME`` (ephemeral when unset); see ``runner.dagster_instance``."""
    from orchestration.runner import dagster_instance

    return dagster_instance(settings)


def _cmd_run(args: argparse.Namespace) -> int:
    from lake.ingest import list_landing_partitions, parse_partition_key
    from lake.ledger import read_ledger
    from lake.paths import LakePaths
    from orchestration.definitions import build_definitions
    from orchestration.hours import split_runs
    from orchestration.resources import LakeResource
    from orchestration.runner import run_range

    paths = LakePaths.from_root(settings=args.settings)
    if args.from_ or args.to:
        if not (args.from_ and args.to):
            raise GrowthlakeError("give both --from and --to (dates like 2026-11-02, "
                                  "or hour keys like 2026-11-02-05:00).")
        keys = partition_range(args.from_, args.to)
    else:
        keys = list_landing_partitions(paths)
        if not keys:
            raise GrowthlakeError(f"nothing has landed under {paths.landing_events}: run `growthlake simulate` first, "
                                  "or pass --from/--to.")
    keys, still_open = closed_hours(keys, ranged=bool(args.from_))
    # The hours this run covers end at the range's end (a ranged run) or at the open hour.
    covered_until = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    if args.to:
        covered_until = min(covered_until, partition_range_end(args.to))
    if still_open:
        print(f"skipping {still_open[0]}{f' .. {still_open[-1]}' if len(still_open) > 1 else ''}: the hour is still "
              f"open (events are landing in it); it is ingested once it closes at "
              f"{parse_partition_key(still_open[0]) + timedelta(hours=1):%H:%M} UTC, "
              "by the hourly schedule or a later run")
    defs = build_definitions(lake=LakeResource(root=paths.root, tracking_plan=args.tracking_plan))
    instance = _instance(args.settings)
    runs = split_runs(keys)
    print(f"materializing {len(keys)} hourly partitions {keys[0]} .. {keys[-1]} into {paths.root} "
          f"({len(runs)} ranged run{'s' if len(runs) > 1 else ''} of the hourly job)", flush=True)
    started_at = datetime.now(UTC)
    # A ranged run backfills the daily facts of the marts from its first day on.
    result = run_range(paths, keys, defs=defs, instance=instance, covered_until=covered_until,
                       warehouse=not args.no_warehouse, backfill_from=keys[0][:10] if args.from_ else None,
                       features=not args.no_features, loops=not args.no_loops,
                       log_level="INFO" if args.verbose else "WARNING")
    failed = result.failed
    _print_summary(read_ledger(paths, keys).to_pylist())
    _alert_failed_runs(instance, paths, since=started_at)
    if failed:
        print(f"\n{len(failed)} partition(s) failed a gate or did not reconcile: {', '.join(failed[:10])}"
              f"{' …' if len(failed) > 10 else ''}\nInspect with `growthlake status`; held batches are under "
              f"{paths.audit_holds}.", file=sys.stderr)
        return 1
    return 0


def _alert_failed_runs(instance, paths, *, since: datetime) -> None:
    """Raise the alert of each run of this command that failed other than by a gate (the gates raised
    theirs from the trust hooks): in-process runs are seen by no run-failure sensor unless a daemon runs."""
    import dagster as dg

    from orchestration.alerts import alert_failed_runs

    runs = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE], created_after=since))
    new = alert_failed_runs(instance, paths, [r.run_id for r in runs])
    if new:
        print(f"{new} failed run(s) raised an alert (`growthlake alerts list`)", file=sys.stderr)


def _print_summary(rows: list[dict]) -> None:
    total = {k: sum(r[k] for r in rows) for k in
             ("lines_landed", "bronze_rows", "quarantined", "consent_dropped", "duplicates_dropped", "held_for_audit")}
    reasons: dict[str, int] = {}
    for r in rows:
        for k, v in json.loads(r["quarantined_by_reason"]).items():
            reasons[k] = reasons.get(k, 0) + v
    print("\nsummary")
    print(f"  lines landed          {total['lines_landed']:>10,}")
    print(f"  ingested into bronze  {total['bronze_rows']:>10,}")
    print(f"  quarantined           {total['quarantined']:>10,}")
    for k, v in sorted(reasons.items(), key=lambda kv: -kv[1]):
        print(f"    {k:<20}{v:>10,}")
    print(f"  dropped for consent   {total['consent_dropped']:>10,}")
    print(f"  duplicates dropped    {total['duplicates_dropped']:>10,}")
    if total["held_for_audit"]:
        print(f"  held by a failed gate {total['held_for_audit']:>10,}")
    ok = sum(1 for r in rows if r["reconciled"])
    print(f"  partitions reconciled {ok:>10,} / {len(rows)}")


def _cmd_replay(args: argparse.Namespace) -> int:
    from lake.contracts import load_plan
    from lake.paths import LakePaths
    from lake.pii import PiiMasker, pii_key_from_env
    from lake.replay import replay_quarantine

    paths = LakePaths.from_root(args.root)
    res = replay_quarantine(paths, plan=load_plan(args.tracking_plan), masker=PiiMasker(pii_key_from_env(paths)),
                            partitions=args.partition or None)
    print(f"examined {res.examined} open quarantined lines: {res.replayed} moved to bronze, "
          f"{res.duplicates} were duplicates of events already in bronze")
    if res.still_failing:
        print("still failing the plan: " + ", ".join(f"{k}={v}" for k, v in sorted(res.still_failing.items())))
    if res.gate_failed:
        print(f"nothing published: the bronze gate rejected the replayed rows: {res.gate_failed}", file=sys.stderr)
        return 1
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from growth_loops.status import growth_status
    from lake.paths import LakePaths
    from lake.status import ALERT_WINDOW, lake_status

    paths = LakePaths.from_root(settings=args.settings)
    st, growth = lake_status(paths), growth_status(paths)
    print(f"storage root: {st['root']}")
    print(f"landing: {st['landing_hours']} hour folders, {st['landing_files']} files")
    print(f"\n{'table':<28}{'rows':>12}{'version':>9}  last partition")
    for t in st["tables"]:
        print(f"{t['table']:<28}{t['rows']:>12,}{t['version']:>9}  {t['last_partition'] or '-'}")
    wh = st["warehouse"]
    if wh is None:
        print("\nwarehouse: not built yet (`growthlake run`, or the nightly_warehouse job)")
    else:
        print(f"\nwarehouse {wh['path']}, built {wh['built_at']:%Y-%m-%d %H:%M:%S} UTC")
        for name, rows in wh["marts"].items():
            print(f"  marts.{name:<30}{rows:>12,}")
    print(f"\n{'feature view':<28}{'last day':<12}{'online rows':>12}")
    for f in growth["features"]:
        print(f"{f['view']:<28}{f['last_day'].isoformat() if f['last_day'] else '-':<12}{f['online_rows']:>12,}")
    if growth["loops"]:
        print(f"\n{'loop':<28}{'last day':<12}{'status':<20}{'approval':<12}policy version")
        for r in growth["loops"]:
            print(f"{r['loop']:<28}{r['day'].isoformat():<12}{r['status']:<20}{r['approval_state']:<12}"
                  f"{r['policy_version']}")
    else:
        print("\nloops: no decisions yet")
    print(f"pending approvals: {len(growth['pending'])}"
          + "".join(f"\n  {p['loop']} {p['version']} (since {p['requested_at']:%Y-%m-%d %H:%M} UTC)"
                    for p in growth["pending"]) + ("  (`growthlake approvals list`)" if growth["pending"] else ""))
    hours = int(ALERT_WINDOW.total_seconds() // 3600)
    print(f"\nalerts in the last {hours} h: {len(st['alerts'])} ({st['alerts_total']} in all, {st['alerts_open']} open"
          f"{': `growthlake alerts list`' if st['alerts_open'] else ''})")
    for a in st["alerts"][:10]:
        print(f"  {a['raised_at']:%Y-%m-%d %H:%M} {a['severity']:<6} {a['state']:<8} {a['kind']} {a['subject']}: "
              f"{a['detail'] or ''}")
    failing = len(st["failed"]) + len(st["failed_gates"])
    if st["failed"]:
        print(f"\nunreconciled or held landing hours ({len(st['failed'])}):")
        for f in st["failed"][:20]:
            print(f"  {f['landing_partition']}  {f['gate_status']}  {f['gate_summary']}")
    if st["failed_gates"]:
        print(f"\nfailed gates, latest evaluation ({len(st['failed_gates'])}; `growthlake trust show`):")
        for g in st["failed_gates"][:20]:
            where = f"{g['asset']}[{g['partition']}]" if g["partition"] else g["asset"]
            print(f"  {where}:{g['gate']}  {g['severity'] or ''}  {(g['description'] or '')[:120]}")
    if not failing:
        print("\nno failed gates; every ingested partition reconciles")
    return 1 if failing else 0


def _cmd_prepare(args: argparse.Namespace) -> int:
    from lake.dbt_manifest import prepare_manifest
    from lake.paths import LakePaths

    t0 = time.perf_counter()
    manifest = prepare_manifest(LakePaths.from_root(settings=args.settings))
    print(f"dbt manifest ready: {manifest} ({time.perf_counter() - t0:.1f}s)")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from growth_loops.report import build_report
    from lake.paths import LakePaths

    path = build_report(LakePaths.from_root(args.root), args.out)
    print(f"report written to {path} (open it in a browser)")
    return 0


def _cmd_plan_check(args: argparse.Namespace) -> int:
    from lake.contracts import check_version_bump, load_plan
    from lake.contracts.history import plan_at_revision

    new = load_plan(args.tracking_plan)
    old = plan_at_revision(args.against, new.source)
    changes = check_version_bump(old, new)
    print(f"tracking plan {old.version} -> {new.version}: " + ("; ".join(map(str, changes)) or "no changes"))
    return 0


def _cmd_plan_changes(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from lake.contracts import load_plan
    from lake.contracts.changes import schema_changes
    from lake.contracts.history import plans_by_version
    from lake.ingest import parse_partition_key
    from lake.ledger import read_ledger
    from lake.paths import LakePaths

    if args.days < 1:
        print("growthlake: --days must be at least 1", file=sys.stderr)
        return 2
    paths = LakePaths.from_root(args.root)
    plan = load_plan(args.tracking_plan)
    hours = sorted(read_ledger(paths).column("landing_partition").to_pylist())
    if hours:
        since = (parse_partition_key(hours[-1]) - timedelta(days=args.days)).strftime("%Y-%m-%d-%H:00")
        hours = [h for h in hours if h > since]
    history: dict | None = None

    def plan_for_version(version: str):
        nonlocal history
        if history is None:
            history = plans_by_version(plan.source)
        return history.get(version)

    print(schema_changes(paths, hours, plan=plan, plan_for_version=plan_for_version,
                         min_share=args.min_share).render())
    return 0


def _cmd_erase(args: argparse.Namespace) -> int:
    from lake.erasure import erase_person, validate_subject_id
    from lake.paths import LakePaths

    subject = validate_subject_id(args.user)
    paths = LakePaths.from_root(args.root)
    if not args.yes:
        if not sys.stdin.isatty():
            raise GrowthlakeError("erasure cannot be undone: confirm with --yes (no terminal to ask on).")
        answer = input(f"Erase every trace of {subject!r} from {paths.root}? This cannot be undone. [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing erased")
            return 1
    report = erase_person(paths, subject, reason=args.reason)
    shared = f", {report.shared_devices} shared with another user" if report.shared_devices else ""
    print(f"erasure {report.erasure_id} ({report.devices} linked device(s){shared}), {report.elapsed_s:.1f}s")
    removed = report.removed_by_place()
    if not report.subject_known:
        print("nothing found: the lake never saw this id (no event, identity link or landed line carries it)")
    elif not removed:
        print("nothing found: the lake holds no data of this id (already erased)")
    if report.shared_devices:
        print("  shared devices: only this person's events on them were erased (another user's events stay)")
    for place, count in removed.items():
        print(f"  {place:<60}{count:>10,}")
    if report.history_purged:
        print(f"history purged (old versions and log) of {len(report.history_purged)} table(s): "
              + ", ".join(report.history_purged))
    if report.ledger_partitions:
        print(f"ledger re-derived and reconciled for {len(report.ledger_partitions)} landing hour(s)")
    print(f"recorded in {paths.erasures} (subject as keyed hash {report.subject_hash})")
    return 0


def _cmd_maintain(args: argparse.Namespace) -> int:
    from lake.maintenance import maintain_tables, retention_hours_from_env
    from lake.paths import LakePaths

    hours = retention_hours_from_env() if args.retention_hours is None else args.retention_hours
    reports = maintain_tables(LakePaths.from_root(args.root), compact=not args.no_compact, vacuum=not args.no_vacuum,
                              retention_hours=hours)
    for r in reports:
        print(r.summary())
    freed = sum(r.bytes_vacuumed for r in reports) / 2**20
    before, after = sum(r.files_before for r in reports), sum(r.files_after for r in reports)
    deleted = sum(r.files_vacuumed for r in reports)
    print(f"{len(reports)} table(s): {before:,} -> {after:,} live files, {deleted:,} superseded file(s) deleted "
          f"({freed:,.1f} MB; retention {hours} h)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--root", help="storage root (default: $GROWTHLAKE_ROOT or ./data)")
    common.add_argument("--tracking-plan", help="tracking plan YAML (default: the one shipped in lake/contracts)")
    p = argparse.ArgumentParser(prog="growthlake", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="verb", required=True)

    s = sub.add_parser("simulate", parents=[common], help="write simulated product events into the landing zone")
    s.add_argument("--users", type=int, default=2000)
    s.add_argument("--days", type=int, default=7)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--start", type=_date, help="first simulated day (default: today minus --days)")
    s.add_argument("--fault-rate", type=float, default=0.02, help="share of lines hit by a collector fault")
    s.set_defaults(fn=_cmd_simulate, needs=WRITE)

    r = sub.add_parser("run", parents=[common],
                       help="materialize the asset graph in process for a range of hourly partitions")
    r.add_argument("--from", dest="from_", help="first day (YYYY-MM-DD) or hour (YYYY-MM-DD-HH:00)")
    r.add_argument("--to", help="last day or hour, inclusive (default with neither: every landed hour)")
    r.add_argument("-v", "--verbose", action="store_true", help="show Dagster's step logs")
    r.add_argument("--no-warehouse", action="store_true", help="skip the dbt build of the warehouse marts")
    r.add_argument("--no-features", action="store_true", help="skip materializing the feature views of the days run")
    r.add_argument("--no-loops", action="store_true", help="skip the growth loops' decisions of the days run")
    r.set_defaults(fn=_cmd_run, needs=UPDATE | PII | PLAN)

    q = sub.add_parser("replay-quarantine", parents=[common],
                       help="move quarantined lines that now pass the plan into bronze")
    q.add_argument("--partition", action="append", help="only this landing hour (repeatable)")
    q.set_defaults(fn=_cmd_replay, needs=UPDATE | PII | PLAN)

    st = sub.add_parser("status", parents=[common],
                        help="what is in the lake: tables, rows, last partition, failed gates")
    st.set_defaults(fn=_cmd_status, needs=READ)

    from orchestration.cli_features import add_parser as add_features_parser

    add_features_parser(sub, common, _date)

    from orchestration.cli_loops import add_parser as add_loops_parser

    add_loops_parser(sub, common)

    from orchestration.cli_trust import add_parser as add_trust_parser

    add_trust_parser(sub, common)

    from orchestration.cli_alerts import add_parser as add_alerts_parser

    add_alerts_parser(sub, common)

    from orchestration.cli_collect import add_parser as add_collect_parser

    add_collect_parser(sub, common)

    er = sub.add_parser("erase", parents=[common], help="right to erasure: remove every trace of one person")
    er.add_argument("--user", required=True,
                    help="the person's user_id (an anonymous_id erases that device and its user)")
    er.add_argument("--reason", default="data subject request (GDPR art. 17)", help="why, for the erasure record")
    er.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    er.set_defaults(fn=_cmd_erase, needs=UPDATE | PII | PLAN)

    mt = sub.add_parser("maintain", parents=[common],
                        help="compact small files and vacuum superseded ones in every Delta table (nightly job)")
    mt.add_argument("--retention-hours", type=int, default=None,
                    help="delete files superseded longer ago than this (default $GROWTHLAKE_VACUUM_RETENTION_HOURS "
                    "or 168); time travel to younger versions keeps working")
    mt.add_argument("--no-compact", action="store_true", help="only vacuum")
    mt.add_argument("--no-vacuum", action="store_true", help="only compact")
    mt.set_defaults(fn=_cmd_maintain, needs=UPDATE)
    pr = sub.add_parser("prepare", parents=[common],
                        help="parse the dbt project into the root's _dbt/manifest when missing or stale (make install)")
    pr.set_defaults(fn=_cmd_prepare, needs=WRITE)
    rp = sub.add_parser("report", parents=[common], help="write the board report (one HTML file with plots)")
    rp.add_argument("--out", help="where to write it (default: $GROWTHLAKE_ROOT/reports/report.html)")
    rp.set_defaults(fn=_cmd_report, needs=UPDATE)

    pl = sub.add_parser("plan", help="tracking plan tools")
    plsub = pl.add_subparsers(dest="plan_verb", required=True)
    pc = plsub.add_parser("check", parents=[common], help="fail on a breaking change without a major version bump")
    pc.add_argument("--against", default="HEAD", help="git revision to compare with (default HEAD)")
    pc.set_defaults(fn=_cmd_plan_check, needs=PLAN)
    ch = plsub.add_parser("changes", parents=[common],
                          help="properties new, missing or retyped in the landed lines, per plan version")
    ch.add_argument("--days", type=int, default=7, help="landing days to look at, ending with the newest (default 7)")
    ch.add_argument("--min-share", type=float, default=0.01,
                    help="list a new or retyped property only on at least this share of its event's lines "
                         "(default 0.01; smaller ones are stray faulty lines, counted)")
    ch.set_defaults(fn=_cmd_plan_changes, needs=READ | PLAN)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run one verb; a problem with the settings or the arguments is one line on stderr and exit code 2."""
    args = build_parser().parse_args(argv)
    try:
        args.settings = checked_settings(args)
        return args.fn(args)
    except GrowthlakeError as exc:
        print(f"growthlake: {exc}", file=sys.stderr)
        return 2


def console_main() -> None:
    """The console script. Every write is committed before a verb returns; the process then
    ends with ``os._exit`` because a native library's thread teardown at interpreter exit
    (seen ~1 run in 20 after Dagster runs: "terminate called without an active exception")
    would otherwise turn a successful run into SIGABRT."""
    code = main()
    parallel = sys.modules.get("lake.ingest.parallel")
    if parallel is not None:  # ingestion's worker processes would outlive os._exit
        parallel.shutdown_pool()
    if "multiprocessing" in sys.modules:
        # What the interpreter's exit would do and os._exit skips: release the semaphores still
        # registered (dbt's adapter keeps a multiprocessing lock for the life of the process), so the
        # resource tracker does not report them as leaked.
        from multiprocessing import util

        util._exit_function()  # type: ignore[attr-defined]  # private: typeshed does not declare it
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    console_main()
