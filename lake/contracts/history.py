"""The tracking plan as it was at a git revision (for the breaking-change gate)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from lake.contracts.plan import TrackingPlan
from lake.errors import TrackingPlanError

__all__ = ["plan_at_revision", "plans_by_version", "previous_plan_revision"]


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def plan_at_revision(revision: str, plan_path: str | Path) -> TrackingPlan:
    """Load ``plan_path`` as committed at ``revision`` of its git repository."""
    path = Path(plan_path).resolve()
    try:
        top = Path(_git(path.parent, "rev-parse", "--show-toplevel").strip())
        text = _git(top, "show", f"{revision}:{path.relative_to(top).as_posix()}")
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        raise TrackingPlanError(str(path), f"cannot read it at git revision {revision!r} ({exc})") from None
    return TrackingPlan.from_dict(yaml.safe_load(text), source=f"{revision}:{path.name}")


def previous_plan_revision(plan_path: str | Path) -> str | None:
    """The revision to compare the working copy against.

    If the working copy differs from HEAD, that is HEAD; otherwise it is the commit before the
    last one that changed the file (so CI on a clean checkout checks the latest change). None
    when the file has no earlier version.
    """
    path = Path(plan_path).resolve()
    top = Path(_git(path.parent, "rev-parse", "--show-toplevel").strip())
    rel = path.relative_to(top).as_posix()
    if _git(top, "status", "--porcelain", "--", rel).strip():
        tracked = _git(top, "ls-files", "--", rel).strip()
        return "HEAD" if tracked else None
    commits = _git(top, "log", "--format=%H", "-n", "2", "--", rel).split()
    return f"{commits[1]}" if len(commits) > 1 else None


def plans_by_version(plan_path: str | Path, *, limit: int = 50) -> dict[str, TrackingPlan]:
    """Every version of the plan its git history holds (newest commit of each version wins), at most
    ``limit`` commits back; empty when the file is not in a git repository (an installed package)."""
    path = Path(plan_path).resolve()
    try:
        top = Path(_git(path.parent, "rev-parse", "--show-toplevel").strip())
        rel = path.relative_to(top).as_posix()
        commits = _git(top, "log", "--format=%H", "-n", str(limit), "--", rel).split()
    except (subprocess.CalledProcessError, FileNotFoundError, ValueError):
        return {}
    out: dict[str, TrackingPlan] = {}
    for commit in commits:
        try:
            plan = plan_at_revision(commit, path)
        except TrackingPlanError:
            continue
        out.setdefault(plan.version, plan)
    return out
