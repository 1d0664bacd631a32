"""``growthlake approvals …``: the human side of the loops — list, approve, reject policy versions."""

from __future__ import annotations

import argparse
import getpass
import json
import os

__all__ = ["add_parser"]


def _paths(args: argparse.Namespace):
    from lake.paths import LakePaths

    return LakePaths.from_root(args.root)


def _actor(args: argparse.Namespace) -> str:
    return args.actor or os.environ.get("GROWTHLAKE_ACTOR") or getpass.getuser()


def _cmd_list(args: argparse.Namespace) -> int:
    from growth_loops.loops import approvals

    table = approvals.list_approvals(_paths(args), loop=args.loop, only=None if args.all else "pending")
    if table.is_empty():
        print("no pending approvals" if not args.all else "no approval requests yet")
        return 0
    print(f"{'loop':<22}{'version':<22}{'state':<10}{'requested':<22}{'last actor':<18}reason / evidence")
    for r in table.iter_rows(named=True):
        note = r["reason"] if r["state"] != "pending" else r["evidence"]
        print(f"{r['loop']:<22}{r['version']:<22}{r['state']:<10}{r['requested_at']:%Y-%m-%d %H:%M}Z{'':<5}"
              f"{r['actor']:<18}{note[:80]}")
    return 0


def _cmd_verdict(args: argparse.Namespace) -> int:
    from growth_loops.loops import approvals

    paths = _paths(args)
    if args.approvals_verb == "approve":
        approvals.approve(paths, args.loop, args.version, actor=_actor(args), reason=args.reason or "")
        print(f"approved {args.loop} {args.version}: it is actuated from the next decision run")
    else:
        approvals.reject(paths, args.loop, args.version, actor=_actor(args), reason=args.reason or "")
        print(f"rejected {args.loop} {args.version}: the loop keeps its last approved policy (or control)")
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    from growth_loops.loops import audit

    log = audit.read_audit(_paths(args), loop=args.loop)
    if args.kind:
        log = log.filter(log["kind"] == args.kind)
    for r in log.tail(args.last).iter_rows(named=True):
        print(json.dumps(r, default=str))
    return 0


def add_parser(sub, common: argparse.ArgumentParser) -> None:
    a = sub.add_parser("approvals", help="policy versions waiting for a human: list, approve, reject")
    asub = a.add_subparsers(dest="approvals_verb", required=True)
    ls = asub.add_parser("list", parents=[common], help="pending approval requests (--all: every verdict)")
    ls.add_argument("--loop")
    ls.add_argument("--all", action="store_true")
    ls.set_defaults(fn=_cmd_list)
    for verb, helptext in (("approve", "let a pending version act from the next decision run"),
                           ("reject", "refuse a pending version (a reason is required)")):
        v = asub.add_parser(verb, parents=[common], help=helptext)
        v.add_argument("loop")
        v.add_argument("version")
        v.add_argument("--reason", required=verb == "reject")
        v.add_argument("--actor", help="who decides (default: $GROWTHLAKE_ACTOR or the login name)")
        v.set_defaults(fn=_cmd_verdict)
    au = sub.add_parser("audit", parents=[common], help="the decision audit log, as JSON lines")
    au.add_argument("--loop")
    au.add_argument("--kind", choices=["action", "rollback", "approval", "promotion", "skipped"])
    au.add_argument("--last", type=int, default=50)
    au.set_defaults(fn=_cmd_show)
