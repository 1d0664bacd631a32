"""``growthlake trust …``: which days decisions may use, which gates failed, and accepting a failure."""

from __future__ import annotations

import argparse
import getpass

from orchestration.cli_settings import READ, UPDATE

__all__ = ["add_parser"]


def _paths(args: argparse.Namespace):
    from lake.paths import LakePaths

    return LakePaths.from_root(args.root)


def _cmd_show(args: argparse.Namespace) -> int:
    """Per day: trusted or why not; then the failed gates (latest evaluation) with how to resolve them."""
    import polars as pl

    from lake.trust import latest_gate_evaluations, write_daily_trust

    paths = _paths(args)
    verdicts = write_daily_trust(paths)[-args.days:]
    if not verdicts:
        print("no silver data yet: nothing to judge (run `growthlake run` first)")
        return 0
    print(f"{'day':<12}{'trusted':<9}why not")
    for v in verdicts:
        print(f"{v.day.isoformat():<12}{'yes' if v.trusted else 'NO':<9}{'; '.join(v.reasons)[:160]}")
    latest = latest_gate_evaluations(paths)
    failed = latest.filter(~pl.col("passed")) if not latest.is_empty() else latest
    if not failed.is_empty():
        print(f"\n{failed.height} gate(s) failed on their latest evaluation:")
        for r in failed.iter_rows(named=True):
            print(f"  {r['asset']}[{r['partition'] or '-'}] {r['gate']}: {(r['description'] or '')[:140]}")
        print("Fix the data and re-run its partition, or accept a real event (e.g. an outage hour):\n"
              "  growthlake trust accept --asset ASSET --partition KEY --gate GATE --reason TEXT")
    return 1 if any(not v.trusted for v in verdicts) and args.fail_untrusted else 0


def _cmd_accept(args: argparse.Namespace) -> int:
    from lake.trust import accept_gate

    actor = args.actor or args.settings.actor or getpass.getuser()
    try:
        row = accept_gate(_paths(args), args.asset, args.partition, args.gate, actor=actor, reason=args.reason)
    except ValueError as exc:
        print(f"error: {exc}")
        return 2
    days = ", ".join(d.isoformat() for d in row["data_dates"]) or "every day"
    print(f"accepted {args.asset}[{args.partition or '-'}] {args.gate} as {actor}: {days} trusted again "
          f"unless another gate says otherwise (`growthlake trust`)")
    return 0


def add_parser(sub, common: argparse.ArgumentParser) -> None:
    t = sub.add_parser("trust", help="data trust: which days decisions may use, failed gates, accept a failure")
    tsub = t.add_subparsers(dest="trust_verb", required=True)
    s = tsub.add_parser("show", parents=[common], help="per day: trusted or why not; the gates that failed")
    s.add_argument("--days", type=int, default=14, help="how many recent days to list")
    s.add_argument("--fail-untrusted", action="store_true", help="exit 1 when a listed day is untrusted")
    s.set_defaults(fn=_cmd_show, needs=READ)
    a = tsub.add_parser("accept", parents=[common], help="accept a failed gate (recorded with actor and reason)")
    a.add_argument("--asset", required=True, help='e.g. "bronze/events"')
    a.add_argument("--partition", help="e.g. 2026-11-02-14:00 (omit for an unpartitioned asset)")
    a.add_argument("--gate", required=True, help="e.g. volume_within_history")
    a.add_argument("--reason", required=True, help="why the data is right after all (goes to the trust log)")
    a.add_argument("--actor", help="who accepts (default: $GROWTHLAKE_ACTOR or the login name)")
    a.set_defaults(fn=_cmd_accept, needs=UPDATE)
