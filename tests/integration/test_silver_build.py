"""Silver built hour by hour on real Delta tables: stitching, sessions, reruns, kill -9.

Every scenario ends by checking that the incrementally built tables equal a rebuild from bronze
and that every bronze event is in silver/events exactly once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest
from deltalake import DeltaTable

from lake.errors import ConfigError
from lake.ingest import ingest_partition
from lake.silver import build_silver, rebuild_silver
from tests.helpers import event, write_batch

REPO = Path(__file__).resolve().parents[2]
TABLES = {"identity_map": "anonymous_id", "events": "event_id", "sessions": "session_id"}


@dataclass
class _Passed:
    success: bool = True

    def summary(self) -> str:
        return "passed"

    def to_metadata(self) -> dict:
        return {}


def passing_gate(suite, batch, parameters):  # the bronze gate is not under test here (and GX is slow)
    return _Passed()


def land(paths, plan, masker, key: str, lines: list[dict]) -> None:
    write_batch(paths, key, lines, name=f"batch-{len(list(Path(paths.landing_events).rglob('*.jsonl')))}.jsonl")
    assert ingest_partition(paths, key, plan=plan, masker=masker, auditor=passing_gate).published


def ev(name: str, at: str, *, user: str | None = None, anon: str | None = "d1", props: dict | None = None,
       received: str | None = None, event_id: str | None = None) -> dict:
    """An event at ``at`` (``YYYY-MM-DDTHH:MM:SS``, UTC), received when it happened unless late."""
    default_props = {"page_viewed": {"path": "/pricing"}, "user_signed_up": {"method": "email", "email": "a@b.example"},
                     "user_logged_in": {"method": "email"}, "feature_used": {"feature": "api"}}
    return event(name, props if props is not None else default_props.get(name, {}), ts=f"{at}Z",
                 received=f"{received or at}Z", user_id=user, anonymous_id=anon, event_id=event_id)


def table(paths, name: str) -> pl.DataFrame:
    frame = pl.from_arrow(DeltaTable(paths.table("silver", name)).to_pyarrow_table())
    return frame.select(sorted(frame.columns)).sort(TABLES[name])  # type: ignore[union-attr]


def versions(paths) -> dict[str, int]:
    return {n: DeltaTable(paths.table("silver", n)).version() for n in (*TABLES, "_build_state")}


def assert_exactly_once_and_equal_to_rebuild(paths) -> dict[str, pl.DataFrame]:
    bronze_ids = DeltaTable(paths.bronze_events).to_pyarrow_table(columns=["event_id"])["event_id"].to_pylist()
    built = {n: table(paths, n) for n in TABLES}
    assert built["events"]["event_id"].is_unique().all(), "an event is in silver twice"
    assert sorted(built["events"]["event_id"].to_list()) == sorted(bronze_ids), "silver lost or invented an event"
    rebuild_silver(paths)
    for name in TABLES:
        assert built[name].equals(table(paths, name)), f"incremental silver/{name} differs from a rebuild"
    return built


def sessions_of(built: dict[str, pl.DataFrame], person: str) -> list[tuple]:
    rows = built["sessions"].filter(pl.col("person_id") == person).sort("session_start")
    return [(r["session_start"].strftime("%d %H:%M:%S"), r["event_count"]) for r in rows.to_dicts()]


def test_sign_up_landing_hours_later_restitches_the_anonymous_page_views(paths, plan, masker):
    land(paths, plan, masker, "2026-11-02-05:00", [ev("page_viewed", "2026-11-02T05:10:00"),
                                                   ev("page_viewed", "2026-11-02T05:20:00"),
                                                   ev("page_viewed", "2026-11-02T05:30:00", anon="d2")])
    first = build_silver(paths)
    assert (first.events_written, first.identities_added, first.sessions_written) == (3, 0, 2)
    assert set(table(paths, "sessions")["person_id"]) == {"anon:d1", "anon:d2"}

    land(paths, plan, masker, "2026-11-02-07:00", [ev("user_signed_up", "2026-11-02T07:05:00", user="u1"),
                                                   ev("feature_used", "2026-11-02T07:06:00", user="u1")])
    second = build_silver(paths)
    assert (second.identities_added, second.persons_restitched) == (1, 1)
    assert second.events_written == 4  # two new events, two re-attributed page views
    events = table(paths, "events")
    assert events.filter(pl.col("anonymous_id") == "d1")["person_id"].to_list() == ["u1"] * 4
    assert events.filter(pl.col("anonymous_id") == "d2")["person_id"].to_list() == ["anon:d2"]
    identity = table(paths, "identity_map").to_dicts()
    links = [(r["anonymous_id"], r["user_id"], r["link_event_name"], r["linked_at"].strftime("%H:%M"))
             for r in identity]
    assert links == [("d1", "u1", "user_signed_up", "07:05")]

    built = assert_exactly_once_and_equal_to_rebuild(paths)
    assert "anon:d1" not in built["sessions"]["person_id"].to_list(), "the anonymous session must be gone"
    assert sessions_of(built, "u1") == [("02 05:10:00", 2), ("02 07:05:00", 2)]


def test_a_second_device_linked_by_a_login_is_stitched_too(paths, plan, masker):
    land(paths, plan, masker, "2026-11-02-05:00", [ev("page_viewed", "2026-11-02T05:00:00"),
                                                   ev("user_signed_up", "2026-11-02T05:02:00", user="u1")])
    land(paths, plan, masker, "2026-11-02-06:00", [ev("page_viewed", "2026-11-02T06:40:00", anon="phone"),
                                                   ev("page_viewed", "2026-11-02T06:45:00", anon="phone")])
    build_silver(paths)
    assert "anon:phone" in table(paths, "sessions")["person_id"].to_list()
    land(paths, plan, masker, "2026-11-02-09:00", [ev("user_logged_in", "2026-11-02T09:00:00", user="u1", anon="phone"),
                                                   ev("feature_used", "2026-11-02T09:01:00", user="u1", anon="phone")])
    result = build_silver(paths)
    assert (result.identities_added, result.persons_restitched) == (1, 1)

    built = assert_exactly_once_and_equal_to_rebuild(paths)
    assert dict(built["identity_map"].select("anonymous_id", "user_id").iter_rows()) == {"d1": "u1", "phone": "u1"}
    assert set(built["events"]["person_id"]) == {"u1"}
    assert sessions_of(built, "u1") == [("02 05:00:00", 2), ("02 06:40:00", 2), ("02 09:00:00", 2)]


def test_an_earlier_link_arriving_late_moves_the_device_to_its_first_user(paths, plan, masker):
    land(paths, plan, masker, "2026-11-02-05:00", [ev("page_viewed", "2026-11-02T05:00:00", anon="shared")])
    land(paths, plan, masker, "2026-11-02-08:00",
         [ev("user_logged_in", "2026-11-02T08:00:00", user="u2", anon="shared")])
    build_silver(paths)
    assert set(table(paths, "events")["person_id"]) == {"u2"}
    # a sign-up that happened at 04:50 on the same device reaches the collector only at 09:00
    land(paths, plan, masker, "2026-11-02-09:00", [ev("user_signed_up", "2026-11-02T04:50:00", user="u1", anon="shared",
                                                      received="2026-11-02T09:00:00")])
    result = build_silver(paths)
    assert (result.identities_added, result.identities_changed, result.persons_restitched) == (0, 1, 1)

    built = assert_exactly_once_and_equal_to_rebuild(paths)
    assert built["identity_map"].select("user_id", "link_event_name").row(0) == ("u1", "user_signed_up")
    assert dict(built["events"].select("event_name", "person_id").iter_rows()) == {
        "page_viewed": "u1", "user_signed_up": "u1", "user_logged_in": "u2"}
    assert sessions_of(built, "u1") == [("02 04:50:00", 2)] and sessions_of(built, "u2") == [("02 08:00:00", 1)]


def test_sessions_split_at_gaps_over_30_minutes_and_span_midnight_built_hour_by_hour(paths, plan, masker):
    def pv(at: str, received: str | None = None) -> dict:
        return ev("page_viewed", at, user="u1", received=received)

    hours = {
        "2026-11-02-23:00": [pv("2026-11-02T23:40:00"), pv("2026-11-02T23:55:00")],
        "2026-11-03-00:00": [pv("2026-11-03T00:20:00"), pv("2026-11-03T00:50:00")],  # gap of exactly 30 min
        "2026-11-03-01:00": [pv("2026-11-03T01:20:01")],  # 30 min 1 s after the last one: new session
        "2026-11-03-02:00": [pv("2026-11-03T02:10:00"),
                             pv("2026-11-03T01:45:00", received="2026-11-03T02:10:30")],  # late: bridges the gap
    }
    expected = {
        "2026-11-02-23:00": [("02 23:40:00", 2)],
        "2026-11-03-00:00": [("02 23:40:00", 4)],
        "2026-11-03-01:00": [("02 23:40:00", 4), ("03 01:20:01", 1)],
        "2026-11-03-02:00": [("02 23:40:00", 4), ("03 01:20:01", 3)],
    }
    for key, lines in hours.items():
        land(paths, plan, masker, key, lines)
        build_silver(paths)
        assert sessions_of({"sessions": table(paths, "sessions")}, "u1") == expected[key], key
    built = assert_exactly_once_and_equal_to_rebuild(paths)
    midnight = built["sessions"].sort("session_start").row(0, named=True)
    assert str(midnight["session_date"]) == "2026-11-02" and midnight["duration_s"] == 70 * 60.0
    assert built["sessions"]["is_bounce"].to_list() == [False, False]


def test_rerunning_or_reprocessing_a_build_commits_nothing(paths, plan, masker):
    land(paths, plan, masker, "2026-11-02-05:00", [ev("page_viewed", "2026-11-02T05:10:00")])
    land(paths, plan, masker, "2026-11-02-06:00", [ev("user_signed_up", "2026-11-02T06:00:00", user="u1")])
    build_silver(paths)
    before = versions(paths)
    reruns = {0: build_silver(paths), 1: build_silver(paths, since_version=1),
              2: build_silver(paths, landing_partitions=["2026-11-02-05:00", "2026-11-02-06:00"])}
    # bronze v0 is its creation (a fence, no row: lake.delta_io.publish_fenced), v1 the first hour
    assert [r.bronze_rows_read for r in reruns.values()] == [0, 1, 2]
    for rerun in reruns.values():
        assert (rerun.events_written, rerun.identities_added, rerun.sessions_written) == (0, 0, 0)
    assert versions(paths) == before, "a rerun must not commit to any silver table"


CRASHING_BUILD = ("from lake.paths import LakePaths\nfrom lake.silver import build_silver\n"
                  "build_silver(LakePaths.from_root())\n")


@pytest.mark.slow
@pytest.mark.parametrize("failpoint", ["silver_after_identity_commit", "silver_between_events_commits",
                                       "silver_after_events_commit", "silver_after_sessions_commit"])
def test_kill_9_between_commits_then_rerun_is_exactly_once(paths, plan, masker, failpoint):
    land(paths, plan, masker, "2026-11-02-05:00", [ev("page_viewed", "2026-11-02T05:10:00"),
                                                   ev("page_viewed", "2026-11-02T05:12:00", anon="d2")])
    build_silver(paths)
    land(paths, plan, masker, "2026-11-02-06:00", [ev("user_signed_up", "2026-11-02T05:30:00", user="u1",
                                                      received="2026-11-02T06:00:00"),
                                                   ev("page_viewed", "2026-11-02T06:01:00", anon="d2")])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "GROWTHLAKE_FAILPOINT": failpoint}
    crashed = subprocess.run([sys.executable, "-c", CRASHING_BUILD], cwd=REPO, env=env, capture_output=True,
                             text=True, timeout=120)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr

    result = build_silver(paths)  # the rerun, in this process
    assert len(result.rolled_back) >= 1 and result.persons_restitched == 1
    built = assert_exactly_once_and_equal_to_rebuild(paths)
    assert set(built["events"]["person_id"]) == {"u1", "anon:d2"}
    assert "anon:d1" not in built["sessions"]["person_id"].to_list()


@pytest.mark.slow
def test_kill_9_in_the_very_first_build_then_rerun(paths, plan, masker):
    land(paths, plan, masker, "2026-11-02-05:00", [ev("page_viewed", "2026-11-02T05:10:00"),
                                                   ev("user_signed_up", "2026-11-02T05:11:00", user="u1")])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "GROWTHLAKE_FAILPOINT": "silver_after_sessions_commit"}
    crashed = subprocess.run([sys.executable, "-c", CRASHING_BUILD], cwd=REPO, env=env, capture_output=True,
                             text=True, timeout=120)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    result = build_silver(paths)
    assert len(result.rolled_back) == 3 and result.events_written == 2
    built = assert_exactly_once_and_equal_to_rebuild(paths)
    assert set(built["events"]["person_id"]) == {"u1"}


def test_appends_to_a_partition_are_compacted(paths, plan, masker, monkeypatch):
    import lake.silver.steps as silver_steps

    monkeypatch.setattr(silver_steps, "_COMPACT_AFTER_FILES", 3)
    for hour in range(7):  # late events of 2 Nov arriving hour after hour on 3 Nov: appends to one partition
        land(paths, plan, masker, f"2026-11-03-{hour:02d}:00",
             [ev("feature_used", f"2026-11-02T10:0{hour}:00", user="u1", received=f"2026-11-03T{hour:02d}:00:00")])
        build_silver(paths)
        files = DeltaTable(paths.silver_events).file_uris(partition_filters=[("event_date", "=", "2026-11-02")])
        assert len(files) <= 3, f"partition left with {len(files)} files after hour {hour}"
    built = assert_exactly_once_and_equal_to_rebuild(paths)
    assert sessions_of(built, "u1") == [("02 10:00:00", 7)]


def test_a_late_link_rewrites_only_the_files_holding_the_linked_devices_events(paths, plan, masker):
    import pyarrow.parquet as pq

    # Five visitors browse anonymously in five hours of one day, beside a signed-in user: each hour
    # appends one file of identified events and one of anonymous ones.
    for hour, device in enumerate(["d1", "d2", "d3", "d4", "d5"]):
        at = f"2026-11-02T{10 + hour:02d}"
        land(paths, plan, masker, f"2026-11-02-{10 + hour:02d}:00",
             [ev("page_viewed", f"{at}:0{i}:00", anon=device) for i in range(3)]
             + [ev("feature_used", f"{at}:05:00", user="u1", anon="d0")])
        build_silver(paths)
    files_before = set(DeltaTable(paths.silver_events).file_uris())
    assert len(files_before) == 10
    # Next day d3 signs up: its three anonymous events of 2 Nov move to the user.
    land(paths, plan, masker, "2026-11-03-09:00", [ev("user_signed_up", "2026-11-03T09:00:00", user="u3", anon="d3")])
    result = build_silver(paths)
    assert result.persons_restitched == 1 and result.events_written == 4

    after = DeltaTable(paths.silver_events)
    gone = files_before - set(after.file_uris())
    assert len(gone) == 1, f"re-attributing one visitor rewrote {len(gone)} files of the day, not just its own"
    rewritten = pq.read_table(gone.pop().removeprefix("file://"), columns=["anonymous_id", "user_id"])
    assert set(rewritten["anonymous_id"].to_pylist()) == {"d3"} and rewritten["user_id"].null_count == 3
    moved = pl.from_arrow(after.to_pyarrow_table()).filter(pl.col("anonymous_id") == "d3")
    assert moved["person_id"].to_list() == ["u3"] * 4
    built = assert_exactly_once_and_equal_to_rebuild(paths)
    assert sessions_of(built, "u3") == [("02 12:00:00", 3), ("03 09:00:00", 1)]


def test_event_ids_with_quotes_are_re_attributed_safely(paths, plan, masker):
    # The in-place rewrite names the moved rows' event ids in a Delta predicate: client-supplied
    # ids with quotes must neither break it nor widen it to other rows.
    ids = ["it's", "x') OR ('1'='1", "back\\slash'"]
    land(paths, plan, masker, "2026-11-02-10:00",
         [ev("page_viewed", f"2026-11-02T10:0{i}:00", anon="d9", event_id=e) for i, e in enumerate(ids)]
         + [ev("page_viewed", "2026-11-02T10:05:00", anon="d8", event_id="other")])
    build_silver(paths)
    land(paths, plan, masker, "2026-11-02-11:00", [ev("user_logged_in", "2026-11-02T11:00:00", user="u9", anon="d9")])
    build_silver(paths)
    built = assert_exactly_once_and_equal_to_rebuild(paths)
    people = dict(zip(built["events"]["event_id"].to_list(), built["events"]["person_id"].to_list(), strict=True))
    assert [people[e] for e in ids] == ["u9"] * 3 and people["other"] == "anon:d8"


def test_a_backlog_is_built_in_bounded_steps_of_bronze_commits(paths, plan, masker, monkeypatch):
    # Five landing hours ingested before silver runs (a backfill); at most 3 rows per step, so the
    # one build processes them commit by commit — the late sign-up re-stitching rows of an earlier
    # step — and ends where a single pass (the rebuild) ends.
    hours = [
        [ev("page_viewed", "2026-11-02T05:10:00"), ev("page_viewed", "2026-11-02T05:20:00")],
        [ev("page_viewed", "2026-11-02T06:00:00", anon="d2"), ev("page_viewed", "2026-11-02T06:01:00", anon="d2")],
        [ev("user_signed_up", "2026-11-02T07:05:00", user="u1"), ev("feature_used", "2026-11-02T07:06:00", user="u1")],
        [ev("page_viewed", "2026-11-02T08:00:00", anon="d3")],
        [ev("user_logged_in", "2026-11-02T09:00:00", user="u1", anon="d2")],
    ]
    for hour, lines in enumerate(hours):
        land(paths, plan, masker, f"2026-11-02-{5 + hour:02d}:00", lines)
    monkeypatch.setenv("GROWTHLAKE_SILVER_STEP_ROWS", "3")
    result = build_silver(paths)

    history = DeltaTable(paths.table("silver", "_build_state")).history()
    states = [h for h in history if h["operation"] != "CREATE TABLE"]
    assert len(states) == 4, f"expected 4 recorded steps (rows 2 | 2 | 2+1 | 1), got {len(states)}"
    assert result.bronze_rows_read == 8 and result.identities_added == 2 and result.persons_restitched == 2
    assert result.landing_partitions == [f"2026-11-02-{h:02d}:00" for h in range(5, 10)]
    built = assert_exactly_once_and_equal_to_rebuild(paths)
    assert sessions_of(built, "u1") == [("02 05:10:00", 2), ("02 06:00:00", 2), ("02 07:05:00", 2), ("02 09:00:00", 1)]


def test_a_step_bound_that_is_not_a_positive_number_is_refused(paths, plan, masker, monkeypatch):
    land(paths, plan, masker, "2026-11-02-05:00", [ev("page_viewed", "2026-11-02T05:10:00")])
    monkeypatch.setenv("GROWTHLAKE_SILVER_STEP_ROWS", "lots")
    with pytest.raises(ConfigError, match="GROWTHLAKE_SILVER_STEP_ROWS: is 'lots', not a whole number of rows"):
        build_silver(paths)
    assert not Path(paths.table("silver", "_build_state")).exists(), "nothing may be built with a bad setting"


def test_reprocessing_from_an_early_version_in_steps(paths, plan, masker, monkeypatch):
    # since_version widens the change set; its steps end before the version silver already
    # reflects, which is not "bronze was recreated".
    for hour in range(4):
        land(paths, plan, masker, f"2026-11-02-{5 + hour:02d}:00",
             [ev("page_viewed", f"2026-11-02T{5 + hour:02d}:10:00", anon=f"d{hour}"),
              ev("user_logged_in", f"2026-11-02T{5 + hour:02d}:20:00", user="u1", anon=f"d{hour}")])
        build_silver(paths)
    monkeypatch.setenv("GROWTHLAKE_SILVER_STEP_ROWS", "2")
    result = build_silver(paths, since_version=1)  # v0 is bronze's creation (a fence, no row), v1 the first hour
    assert result.bronze_rows_read == 6 and result.bronze_version == 4  # versions 2-4, one step each
    built = assert_exactly_once_and_equal_to_rebuild(paths)
    assert set(built["events"]["person_id"]) == {"u1"}
