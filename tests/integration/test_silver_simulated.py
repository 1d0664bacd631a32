"""Simulated product traffic, ingested and built into silver hour by hour, equals a rebuild."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from lake.ingest import ingest_partition, list_landing_partitions
from lake.silver import build_silver
from simulation import simulate
from tests.integration.test_silver_build import assert_exactly_once_and_equal_to_rebuild, passing_gate, versions

pytestmark = pytest.mark.slow


def test_hour_by_hour_silver_equals_a_rebuild_on_simulated_traffic(paths, plan, masker):
    simulate(paths.root, users=300, days=3, seed=5, start=date(2026, 11, 2))
    totals = {"identities_added": 0, "persons_restitched": 0, "sessions_removed": 0, "events_written": 0}
    for key in list_landing_partitions(paths):
        assert ingest_partition(paths, key, plan=plan, masker=masker, auditor=passing_gate).published
        result = build_silver(paths)
        for name in totals:
            totals[name] += getattr(result, name)
    # the traffic exercised what matters: links, sign-ups hours after the first visit, merged sessions
    assert totals["identities_added"] > 50 and totals["persons_restitched"] > 5 and totals["sessions_removed"] > 5
    before = versions(paths)
    assert build_silver(paths).events_written == 0 and versions(paths) == before

    built = assert_exactly_once_and_equal_to_rebuild(paths)
    events, identity, sessions = built["events"], built["identity_map"], built["sessions"]
    # no event of a linked device is left anonymous, and no session belongs to a linked device
    linked = identity["anonymous_id"].implode()
    left_anonymous = pl.col("anonymous_id").is_in(linked) & pl.col("person_id").str.starts_with("anon:")
    assert events.filter(left_anonymous).height == 0
    assert sessions.filter(pl.col("person_id").is_in(("anon:" + identity["anonymous_id"]).implode())).height == 0
    # sessions account for every event, and revenue only comes from payments
    assert sessions["event_count"].sum() == events.filter(pl.col("person_id").is_not_null()).height
    assert set(events.filter(pl.col("revenue").is_not_null())["event_name"]) <= {"payment_succeeded"}
