"""``growthlake alerts …``: the alerts raised (failed gates, failed runs, freshness breaches), acknowledge, resolve."""

from __future__ import annotations

import argparse
import getpass
from datetime import UTC, datetime

from orchestration.cli_settings import READ, UPDATE

__all__ = ["add_parser"]


def _paths(args: argparse.Namespace):
    from lake.paths import LakePaths

    return LakePaths.from_root(args.root)


def _actor(args: argparse.Namespace) -> str:
    return args.actor or args.settings.actor or getpass.getuser()


def _cmd_list(args: argparse.Namespace) -> int:
    """Open alerts (``--all``: every alert), newest first, then how many are open and the median time to resolve."""
    from lake.alerts import alert_summary, format_duration, read_alerts

    alerts = read_alerts(_paths(args))
    if args.kind:
        alerts = alerts.filter(alerts["kind"] == args.kind)
    shown = alerts if args.all else alerts.filter(alerts["state"] != "resolved")
    now = datetime.now(UTC)
    if shown.is_empty():
        print("no alerts" if args.all or alerts.is_empty() else "no open alerts (`--all` lists the resolved ones)")
    else:
        print(f"{'id':<14}{'raised (UTC)':<18}{'kind':<18}{'state':<10}{'age/to resolve':<16}subject: detail")
        for r in shown.sort("raised_at", descending=True).iter_rows(named=True):
            took = r["time_to_resolve_s"] if r["state"] == "resolved" else (now - r["raised_at"]).total_seconds()
            who = {"acked": f" by {r['acked_by']}", "resolved": f" by {r['resolved_by']}"}.get(r["state"], "")
            print(f"{r['alert_id'][:12]:<14}{r['raised_at']:%Y-%m-%d %H:%M}  {r['kind']:<18}{r['state']:<10}"
                  f"{format_duration(took):<16}{r['subject']}: {(r['detail'] or '')[:120]}{who}")
    s = alert_summary(alerts)
    print(f"\n{s['open']} open, {s['resolved']} resolved; median time to resolve "
          f"{format_duration(s['median_time_to_resolve_s'])}")
    return 0


def _cmd_ack(args: argparse.Namespace) -> int:
    from lake.alerts import ack_alert

    row = ack_alert(_paths(args), args.alert_id, actor=_actor(args), note=args.note)
    print(f"acknowledged {row['alert_id'][:12]} ({row['kind']} {row['subject']}) as {row['acked_by']}; "
          f"resolve it with `growthlake alerts resolve {row['alert_id'][:12]}` once fixed")
    return 0


def _cmd_resolve(args: argparse.Namespace) -> int:
    from lake.alerts import format_duration, resolve_alert

    row = resolve_alert(_paths(args), args.alert_id, actor=_actor(args), note=args.note)
    print(f"resolved {row['alert_id'][:12]} ({row['kind']} {row['subject']}) as {row['resolved_by']}, "
          f"{format_duration(row['time_to_resolve_s'])} after it was raised")
    return 0


def add_parser(sub, common: argparse.ArgumentParser) -> None:
    a = sub.add_parser("alerts", help="alerts: failed gates, failed runs, freshness breaches; acknowledge, resolve")
    asub = a.add_subparsers(dest="alerts_verb", required=True)
    ls = asub.add_parser("list", parents=[common], help="open alerts, newest first; how many open, time to resolve")
    ls.add_argument("--all", action="store_true", help="the resolved alerts too")
    ls.add_argument("--kind", choices=["gate_failed", "run_failed", "freshness"], help="only this kind")
    ls.set_defaults(fn=_cmd_list, needs=READ)
    for verb, fn, help_ in (("ack", _cmd_ack, "acknowledge an alert: someone is on it (recorded with the actor)"),
                            ("resolve", _cmd_resolve, "resolve an alert (recorded with the actor and a note)")):
        p = asub.add_parser(verb, parents=[common], help=help_)
        p.add_argument("alert_id", help="the alert's id, or its first 12 characters as `alerts list` shows them")
        p.add_argument("--actor", help="who (default: $GROWTHLAKE_ACTOR or the login name)")
        p.add_argument("--note", help="what was done (kept with the action)")
        p.set_defaults(fn=fn, needs=UPDATE)
