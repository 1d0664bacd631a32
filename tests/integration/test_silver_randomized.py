"""Randomized histories: shared devices, conflicting links, late deliveries, builds at random
hours and crashes between commits — silver must always end equal to a rebuild."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

import lake.silver.build as silver_build
import lake.silver.steps as silver_steps
from lake.silver import build_silver
from tests.integration.test_silver_build import assert_exactly_once_and_equal_to_rebuild, ev, land

FAILPOINTS = [None, "silver_after_identity_commit", "silver_between_events_commits", "silver_after_events_commit",
              "silver_after_sessions_commit"]
T0 = datetime(2026, 11, 2, 20, 0, tzinfo=UTC)


class Crash(Exception):
    """Stands in for kill -9 in process: the build stops right after a commit."""


def random_history(rng: random.Random, n: int = 50) -> dict[str, list[dict]]:
    """``n`` events over 8 hours (across midnight) on 5 devices shared by 2 users, some late."""
    hours: dict[str, list[dict]] = {}
    for _ in range(n):
        at = T0 + timedelta(seconds=rng.uniform(0, 8 * 3600))
        device, user = f"d{rng.randrange(5)}", rng.choice([None, None, None, "u1", "u2"])
        name = rng.choice(["user_logged_in", "user_signed_up"]) if user and rng.random() < 0.5 else \
            ("feature_used" if user else "page_viewed")
        received = at + timedelta(minutes=rng.choice([0, 0, 0, 5, 70, 200]))
        hours.setdefault(received.strftime("%Y-%m-%d-%H:00"), []).append(
            ev(name, at.strftime("%Y-%m-%dT%H:%M:%S"), user=user, anon=device,
               received=received.strftime("%Y-%m-%dT%H:%M:%S")))
    return hours


@pytest.mark.parametrize("seed", range(4))
def test_random_histories_with_crashes_end_equal_to_a_rebuild(paths, plan, masker, monkeypatch, seed):
    crash_at: list[str | None] = [None]

    def failpoint(name: str) -> None:
        if name == crash_at[0]:
            raise Crash(name)

    monkeypatch.setattr(silver_build, "failpoint", failpoint)
    monkeypatch.setattr(silver_steps, "failpoint", failpoint)
    rng = random.Random(seed)
    crashes = 0
    for key, lines in sorted(random_history(rng).items()):
        land(paths, plan, masker, key, lines)
        if rng.random() < 0.6:
            crash_at[0] = rng.choice(FAILPOINTS)
            try:
                build_silver(paths)
            except Crash:
                crashes += 1
            crash_at[0] = None
    build_silver(paths)
    assert crashes > 0
    assert_exactly_once_and_equal_to_rebuild(paths)
