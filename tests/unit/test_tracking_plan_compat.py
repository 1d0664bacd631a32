"""The tracking plan is a contract: breaking changes need a major version bump."""

from __future__ import annotations

import copy
import shutil
import subprocess

import pytest
import yaml

from lake.contracts import DEFAULT_PLAN_PATH, TrackingPlan, check_version_bump, diff_plans, load_plan
from lake.contracts.history import plan_at_revision, previous_plan_revision
from lake.errors import BreakingPlanChange, TrackingPlanError


@pytest.fixture
def doc() -> dict:
    return yaml.safe_load(DEFAULT_PLAN_PATH.read_text())


def _plan(d: dict) -> TrackingPlan:
    return TrackingPlan.from_dict(d)


def _bump(d: dict, part: int) -> dict:
    d = copy.deepcopy(d)
    v = [int(x) for x in d["version"].split(".")]
    v[part] += 1
    v[part + 1:] = [0] * (2 - part)
    d["version"] = ".".join(map(str, v))
    return d


BREAKING = {
    "event removed": lambda d: d["events"].pop("email_clicked"),
    "required property removed": lambda d: d["events"]["user_signed_up"]["properties"].pop("method"),
    "property retyped":
        lambda d: d["events"]["onboarding_step_completed"]["properties"]["step_index"].update(type="string"),
    "optional made required": lambda d: d["events"]["page_viewed"]["properties"]["title"].update(required=True),
    "allowed value removed": lambda d: d["events"]["trial_started"]["properties"]["plan"].update(enum=["pro"]),
    "pii flag dropped": lambda d: d["events"]["user_signed_up"]["properties"]["email"].update(pii=False),
}
ADDITIVE = {
    "event added": lambda d: d["events"].update(referral_sent={"properties": {"channel": {"type": "string"}}}),
    "optional property added": lambda d: d["events"]["page_viewed"]["properties"].update(section={"type": "string"}),
    "allowed value added":
        lambda d: d["events"]["trial_started"]["properties"]["plan"].update(enum=["pro", "team", "enterprise"]),
}


@pytest.mark.parametrize("change", sorted(BREAKING))
def test_breaking_change_without_major_bump_is_rejected(doc, change):
    new = copy.deepcopy(doc)
    BREAKING[change](new)
    with pytest.raises(BreakingPlanChange, match="Bump the major version"):
        check_version_bump(_plan(doc), _plan(_bump(new, 1)))  # a minor bump is not enough
    changes = check_version_bump(_plan(doc), _plan(_bump(new, 0)))  # a major bump is
    assert any(c.kind == "breaking" for c in changes)


@pytest.mark.parametrize("change", sorted(ADDITIVE))
def test_additive_change_needs_no_major_bump(doc, change):
    new = copy.deepcopy(doc)
    ADDITIVE[change](new)
    changes = diff_plans(_plan(doc), _plan(new))
    assert changes and all(c.kind == "additive" for c in changes)
    check_version_bump(_plan(doc), _plan(_bump(new, 1)))


def test_malformed_plan_is_a_clear_error(doc):
    doc["events"]["page_viewed"]["properties"]["path"]["type"] = "text"
    with pytest.raises(TrackingPlanError, match=r"page_viewed\.properties\.path\.type"):
        _plan(doc)
    with pytest.raises(TrackingPlanError, match="semver"):
        _plan({**doc, "version": "2"})


def test_the_committed_plan_change_is_compatible_with_its_version():
    """CI gate: the latest change to the shipped plan (or the uncommitted edit) bumps correctly."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    try:
        revision = previous_plan_revision(DEFAULT_PLAN_PATH)
    except subprocess.CalledProcessError:
        pytest.skip("not a git checkout")
    if revision is None:
        pytest.skip("the tracking plan has no earlier version yet")
    check_version_bump(plan_at_revision(revision, DEFAULT_PLAN_PATH), load_plan(DEFAULT_PLAN_PATH))


def test_git_history_gate_catches_an_unbumped_breaking_commit(tmp_path, doc):
    """The same gate, on a throwaway repository where someone removes an event and commits it."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    plan_file = tmp_path / "tracking_plan.yaml"
    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    plan_file.write_text(yaml.safe_dump(doc))
    subprocess.run([*git, "-C", str(tmp_path), "add", "."], check=True)
    subprocess.run([*git, "-C", str(tmp_path), "commit", "-qm", "plan"], check=True)
    broken = copy.deepcopy(doc)
    broken["events"].pop("payment_failed")
    plan_file.write_text(yaml.safe_dump(broken))
    subprocess.run([*git, "-C", str(tmp_path), "commit", "-qam", "drop payment_failed"], check=True)
    revision = previous_plan_revision(plan_file)
    with pytest.raises(BreakingPlanChange, match="event payment_failed removed"):
        check_version_bump(plan_at_revision(revision, plan_file), load_plan(plan_file))
