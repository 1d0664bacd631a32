"""Online store: latest values per entity in SQLite, never regressed by old writes, nothing past its TTL."""

from __future__ import annotations

import random
import sqlite3
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from growth_loops.features.errors import FeatureStoreError
from growth_loops.features.online import OnlineStore
from growth_loops.features.views import Feature, FeatureView

T0 = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
UTC_TS = pl.Datetime("us", "UTC")
TTL = timedelta(hours=5)

FEATURES = (
    Feature("sessions_7d", "int64", "Sessions in the last 7 days."),
    Feature("spend", "float64", "Spend to date."),
    Feature("tier", "string", "Plan tier."),
    Feature("is_trial", "bool", "In a trial."),
)
VIEW = FeatureView(name="engagement", features=FEATURES, ttl=TTL, owner="growth", source="silver.sessions")
PROFILE = FeatureView(
    name="profile",
    features=(Feature("country", "string", "Country."), Feature("age_days", "int64", "Account age.")),
    ttl=timedelta(days=30),
    owner="growth",
    source="silver.people",
)
SCHEMA = {"person_id": pl.String, "sessions_7d": pl.Int64, "spend": pl.Float64, "tier": pl.String,
          "is_trial": pl.Boolean}


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def rows(data: list[tuple], view: FeatureView = VIEW) -> pl.DataFrame:
    """Rows of (id, valid_from, *features) for ``view``."""
    dtypes = {"int64": pl.Int64, "float64": pl.Float64, "string": pl.String, "bool": pl.Boolean}
    return pl.DataFrame(
        data,
        schema={view.entity: pl.String, "valid_from": UTC_TS,
                **{f.name: dtypes[f.dtype] for f in view.features}},
        orient="row",
    )


def expected(data: list[tuple], schema: dict = SCHEMA) -> pl.DataFrame:
    return pl.DataFrame(data, schema=schema, orient="row")


@pytest.fixture
def store(tmp_path):
    with OnlineStore(tmp_path / "online" / "store.sqlite") as s:
        yield s


def test_all_dtypes_and_nulls_round_trip(store):
    assert store.write(VIEW, rows([
        ("p1", at(0), 3, 12.5, "pro", True),
        ("p2", at(0), -(2**62), -0.0, "", False),
        ("p3", at(0), None, None, None, None),  # a tombstone: the row exists, its values are null
        ("p4", at(0), 0, float("nan"), "ünï ✓", None),  # SQLite has no NaN: stored as null
    ])) == 4
    got = store.get_online_features(["p1", "p2", "p3", "p4"], [VIEW], now=at(1))
    assert_frame_equal(got, expected([
        ("p1", 3, 12.5, "pro", True),
        ("p2", -(2**62), -0.0, "", False),
        ("p3", None, None, None, None),
        ("p4", 0, None, "ünï ✓", None),
    ]))
    assert store.row_count(VIEW) == 4


def test_values_exactly_ttl_old_are_served_and_one_microsecond_later_are_not(store):
    store.write(VIEW, rows([("p1", at(0), 1, 1.0, "a", True)]))
    served = store.get_online_features(["p1"], [VIEW], now=at(0) + TTL)
    assert served.row(0) == ("p1", 1, 1.0, "a", True)
    expired = store.get_online_features(["p1"], [VIEW], now=at(0) + TTL + timedelta(microseconds=1))
    assert expired.row(0) == ("p1", None, None, None, None)
    # now in another time zone is the same instant
    other_tz = (at(0) + TTL).astimezone(__import__("zoneinfo").ZoneInfo("America/New_York"))
    assert store.get_online_features(["p1"], [VIEW], now=other_tz).row(0)[1] == 1


def test_now_defaults_to_the_current_time(store):
    now = datetime.now(UTC)
    store.write(VIEW, rows([("fresh", now - timedelta(hours=1), 1, 1.0, "a", True),
                            ("stale", now - timedelta(hours=6), 2, 2.0, "b", False)]))
    assert store.get_online_features(["fresh", "stale"], [VIEW])["sessions_7d"].to_list() == [1, None]


def test_an_older_valid_from_never_overwrites_a_newer_one(store):
    assert store.write(VIEW, rows([("p1", at(60), 2, 2.0, "new", True)])) == 1
    assert store.write(VIEW, rows([("p1", at(0), 1, 1.0, "old", False),
                                   ("p2", at(0), 5, 5.0, "x", False)])) == 1  # only p2 inserted
    got = store.get_online_features(["p1", "p2"], [VIEW], now=at(61))
    assert got["tier"].to_list() == ["new", "x"]
    assert store.latest_valid_from(VIEW) == at(60)
    assert store.write(VIEW, rows([("p1", at(120), None, None, None, None)])) == 1  # newer wins
    assert store.get_online_features(["p1"], [VIEW], now=at(121)).row(0) == ("p1", None, None, None, None)


def test_rewriting_the_same_rows_is_idempotent_and_equal_valid_from_overwrites(store):
    day = rows([("p1", at(0), 1, 1.0, "a", True), ("p2", at(0), 2, None, "b", None)])
    assert store.write(VIEW, day) == 2
    first = store.get_online_features(["p1", "p2"], [VIEW], now=at(1))
    assert store.write(VIEW, day) == 2
    assert_frame_equal(store.get_online_features(["p1", "p2"], [VIEW], now=at(1)), first)
    assert store.row_count(VIEW) == 2
    # a corrected rematerialization of the same day replaces the values
    assert store.write(VIEW, rows([("p1", at(0), 9, 9.0, "fixed", False)])) == 1
    assert store.get_online_features(["p1"], [VIEW], now=at(1)).row(0) == ("p1", 9, 9.0, "fixed", False)


def test_within_one_write_the_latest_then_the_last_row_of_an_entity_wins(store):
    assert store.write(VIEW, rows([
        ("p1", at(10), 2, None, "later", None),
        ("p1", at(0), 1, None, "earlier", None),
        ("p2", at(0), 1, None, "first", None),
        ("p2", at(0), 2, None, "last", None),
    ])) == 2
    got = store.get_online_features(["p1", "p2"], [VIEW], now=at(11))
    assert got["tier"].to_list() == ["later", "last"]


def test_request_order_duplicates_unknown_and_null_ids_are_kept(store):
    store.write(VIEW, rows([("p1", at(0), 1, 1.0, "a", True), ("p2", at(0), 2, 2.0, "b", False)]))
    got = store.get_online_features(["p2", "nobody", "p1", "p2", None], [VIEW], now=at(1))
    assert_frame_equal(got, expected([
        ("p2", 2, 2.0, "b", False),
        ("nobody", None, None, None, None),
        ("p1", 1, 1.0, "a", True),
        ("p2", 2, 2.0, "b", False),
        (None, None, None, None, None),
    ]))


def test_many_ids_are_looked_up_in_chunks(store):
    n = 1300
    store.write(VIEW, rows([(f"p{i}", at(0), i, None, None, None) for i in range(n)]))
    ids = [f"p{i}" for i in reversed(range(n + 50))]  # 50 unknown first
    got = store.get_online_features(ids, [VIEW], now=at(1))
    assert got["person_id"].to_list() == ids
    assert got["sessions_7d"].to_list() == [None] * 50 + list(reversed(range(n)))


def test_empty_request_and_unwritten_view_give_the_right_schema(store, tmp_path):
    empty = store.get_online_features([], [VIEW, PROFILE], now=at(0))
    assert empty.height == 0
    assert empty.schema == pl.Schema({**SCHEMA, "country": pl.String, "age_days": pl.Int64})
    # the file does not exist yet: reading neither fails nor creates it
    assert not store.path.exists()
    got = store.get_online_features(["p1"], [VIEW], now=at(0))
    assert_frame_equal(got, expected([("p1", None, None, None, None)]))
    assert not store.path.exists()
    assert store.row_count(VIEW) == 0 and store.latest_valid_from(VIEW) is None
    assert store.delete(["p1"]) == 0
    # the file exists, the view does not
    store.write(PROFILE, rows([("p1", at(0), "DE", 3)], PROFILE))
    assert_frame_equal(store.get_online_features(["p1"], [VIEW], now=at(0)), got)


def test_two_views_are_joined_side_by_side(store):
    store.write(VIEW, rows([("p1", at(0), 1, 1.0, "a", True), ("p2", at(0), 2, 2.0, "b", False)]))
    store.write(PROFILE, rows([("p2", at(0), "FR", 40), ("p3", at(0), "DE", 7)], PROFILE))
    got = store.get_online_features(["p1", "p2", "p3"], [PROFILE, VIEW], now=at(1))
    assert got.columns == ["person_id", "country", "age_days", *VIEW.feature_names]
    assert got.rows() == [
        ("p1", None, None, 1, 1.0, "a", True),
        ("p2", "FR", 40, 2, 2.0, "b", False),
        ("p3", "DE", 7, None, None, None, None),
    ]
    # 6 hours later engagement (ttl 5h) has expired, profile (30 days) has not
    later = store.get_online_features(["p2"], [PROFILE, VIEW], now=at(6 * 60))
    assert later.rows() == [("p2", "FR", 40, None, None, None, None)]


def test_clashing_features_and_differing_entities_are_refused(store):
    twin = FeatureView(name="engagement_v2", features=(Feature("spend", "float64", "Spend."),),
                       ttl=TTL, owner="growth", source="s")
    with pytest.raises(FeatureStoreError, match="'spend' is in both.*separately"):
        store.get_online_features(["p1"], [VIEW, twin])
    with pytest.raises(FeatureStoreError, match="requested twice"):
        store.get_online_features(["p1"], [VIEW, VIEW])
    accounts = FeatureView(name="accounts", entity="account_id", features=(Feature("seats", "int64", "."),),
                           ttl=TTL, owner="growth", source="s")
    with pytest.raises(FeatureStoreError, match="different entity columns"):
        store.get_online_features(["p1"], [VIEW, accounts])
    with pytest.raises(FeatureStoreError, match="no views"):
        store.get_online_features(["p1"], [])
    with pytest.raises(FeatureStoreError, match="single string"):
        store.get_online_features("p1", [VIEW])
    with pytest.raises(FeatureStoreError, match="must be strings"):
        store.get_online_features([1], [VIEW])


def test_naive_or_null_timestamps_are_refused(store):
    naive = rows([("p1", at(0), 1, 1.0, "a", True)]).with_columns(pl.col("valid_from").dt.replace_time_zone(None))
    with pytest.raises(FeatureStoreError, match="time-zone-aware"):
        store.write(VIEW, naive)
    with pytest.raises(FeatureStoreError, match="null valid_from"):
        store.write(VIEW, rows([("p1", None, 1, 1.0, "a", True)]))
    with pytest.raises(FeatureStoreError, match="now must be time-zone-aware"):
        store.get_online_features(["p1"], [VIEW], now=datetime(2026, 11, 2, 12))
    assert not store.path.exists()  # nothing was written


def test_malformed_rows_are_refused_and_write_nothing(store):
    good = rows([("p1", at(0), 1, 1.0, "a", True)])
    with pytest.raises(FeatureStoreError, match="missing columns tier"):
        store.write(VIEW, good.drop("tier"))
    with pytest.raises(FeatureStoreError, match="declared dtype"):
        store.write(VIEW, good.with_columns(sessions_7d=pl.lit("many")))
    with pytest.raises(FeatureStoreError, match="must be strings"):
        store.write(VIEW, good.with_columns(person_id=pl.lit(1)))
    with pytest.raises(FeatureStoreError, match="null entity id"):
        store.write(VIEW, good.with_columns(person_id=pl.lit(None, pl.String)))
    # castable columns are cast: ints to float, "1" to int
    assert store.write(VIEW, good.with_columns(spend=pl.lit(2), sessions_7d=pl.lit("7"))) == 1
    assert store.get_online_features(["p1"], [VIEW], now=at(0)).row(0) == ("p1", 7, 2.0, "a", True)


def test_names_that_are_not_plain_identifiers_are_refused(store):
    odd = FeatureView(name='x"; DROP TABLE fv_engagement; --', features=FEATURES, ttl=TTL, owner="g", source="s")
    with pytest.raises(FeatureStoreError, match="not a plain identifier"):
        store.write(odd, rows([("p1", at(0), 1, 1.0, "a", True)]))
    with pytest.raises(FeatureStoreError, match="not a plain identifier"):
        store.get_online_features(["p1"], [odd])
    cased = FeatureView(name="cased", features=(Feature("a", "int64", "."), Feature("A", "int64", ".")),
                        ttl=TTL, owner="g", source="s")
    with pytest.raises(FeatureStoreError, match="letter case"):
        store.get_online_features(["p1"], [cased])


def test_delete_erases_entities_from_given_views_or_all(store):
    store.write(VIEW, rows([("p1", at(0), 1, 1.0, "a", True), ("p2", at(0), 2, 2.0, "b", False)]))
    store.write(PROFILE, rows([("p1", at(0), "DE", 3), ("p2", at(0), "FR", 4)], PROFILE))
    assert store.delete(["p1", "unknown"], [PROFILE]) == 1
    assert store.get_online_features(["p1"], [VIEW, PROFILE], now=at(1)).row(0) == (
        "p1", 1, 1.0, "a", True, None, None)
    assert store.delete(["p1", "p2", "p2"]) == 3  # p1 from VIEW; p2 from both
    assert store.row_count(VIEW) == 0 and store.row_count(PROFILE) == 0
    # a deleted entity can be written again
    assert store.write(VIEW, rows([("p1", at(0), 5, 5.0, "c", True)])) == 1


def test_a_feature_added_to_the_view_later_gets_a_column(store):
    store.write(VIEW, rows([("p1", at(0), 1, 1.0, "a", True), ("p2", at(0), 2, 2.0, "b", False)]))
    grown = FeatureView(name="engagement", features=(*FEATURES, Feature("churn_risk", "float64", "Risk.")),
                        ttl=TTL, owner="growth", source="silver.sessions")
    # readable before its first write: the new feature is null
    assert store.get_online_features(["p1"], [grown], now=at(1)).row(0) == ("p1", 1, 1.0, "a", True, None)
    assert store.write(grown, rows([("p1", at(10), 3, 3.0, "c", False, 0.25)], grown)) == 1
    got = store.get_online_features(["p1", "p2"], [grown], now=at(11))
    assert got.rows() == [("p1", 3, 3.0, "c", False, 0.25), ("p2", 2, 2.0, "b", False, None)]
    # the old declaration still reads the old columns
    assert store.get_online_features(["p1"], [VIEW], now=at(11)).row(0) == ("p1", 3, 3.0, "c", False)
    # dropping the feature again: rows written since hold no stale value for it
    store.write(VIEW, rows([("p1", at(20), 4, 4.0, "d", True)]))
    assert store.get_online_features(["p1"], [grown], now=at(21)).row(0) == ("p1", 4, 4.0, "d", True, None)


def test_a_changed_dtype_is_refused_until_the_view_is_dropped(store):
    store.write(VIEW, rows([("p1", at(0), 1, 1.0, "a", True)]))
    retyped = FeatureView(name="engagement", features=(Feature("sessions_7d", "string", "."),),
                          ttl=TTL, owner="growth", source="s")
    with pytest.raises(FeatureStoreError, match="declared string but stored as INTEGER.*drop_view"):
        store.get_online_features(["p1"], [retyped], now=at(0))
    with pytest.raises(FeatureStoreError, match="declared string but stored as INTEGER"):
        store.write(retyped, rows([("p1", at(0), "1")], retyped))
    assert store.drop_view(retyped) and not store.drop_view(retyped)
    assert store.write(retyped, rows([("p1", at(0), "1")], retyped)) == 1
    assert store.get_online_features(["p1"], [retyped], now=at(0)).row(0) == ("p1", "1")


def test_a_reopened_store_and_a_second_store_on_the_file_see_the_data(tmp_path):
    path = tmp_path / "store.sqlite"
    with OnlineStore(str(path)) as writer:
        writer.write(VIEW, rows([("p1", at(0), 1, 1.0, "a", True)]))
    reader = OnlineStore(path)
    assert reader.get_online_features(["p1"], [VIEW], now=at(1)).row(0) == ("p1", 1, 1.0, "a", True)
    grown = FeatureView(name="engagement", features=(*FEATURES, Feature("churn_risk", "float64", ".")),
                        ttl=TTL, owner="growth", source="s")
    assert reader.get_online_features(["p1"], [grown], now=at(1))["churn_risk"].to_list() == [None]
    with OnlineStore(path) as other:  # a concurrent writer adds a column and newer values
        other.write(grown, rows([("p1", at(5), 2, 2.0, "b", False, 0.5)], grown))
        other.write(PROFILE, rows([("p1", at(5), "DE", 1)], PROFILE))
    got = reader.get_online_features(["p1"], [grown, PROFILE], now=at(6))
    assert got.row(0) == ("p1", 2, 2.0, "b", False, 0.5, "DE", 1)
    reader.close()
    reader.close()  # idempotent; the store reopens on its next use
    assert reader.row_count(VIEW) == 1 and reader.latest_valid_from(VIEW) == at(5)
    reader.close()


@pytest.mark.parametrize("seed", range(5))
def test_random_writes_match_a_brute_force_model(tmp_path, seed):
    rng = random.Random(seed)
    ids = [f"p{i}" for i in range(12)]
    model: dict[str, tuple[datetime, tuple]] = {}
    with OnlineStore(tmp_path / "s.sqlite") as store:
        for _ in range(6):
            batch = []
            for _ in range(rng.randrange(0, 15)):
                vf = at(rng.randrange(0, 600, 30))
                values = (rng.choice([None, rng.randrange(9)]), rng.choice([None, rng.random()]),
                          rng.choice([None, "a", "b"]), rng.choice([None, True, False]))
                batch.append((rng.choice(ids), vf, *values))
            changed = set()
            for pid, vf, *values in batch:  # in row order, a later valid_from or an equal one wins
                if pid not in model or vf >= model[pid][0]:
                    model[pid] = (vf, tuple(values))
                    changed.add(pid)
            assert store.write(VIEW, rows(batch)) == len(changed)
        now = at(rng.randrange(0, 900))
        lookup = [rng.choice([*ids, "ghost"]) for _ in range(30)]
        want = []
        for pid in lookup:
            vf, values = model.get(pid, (None, (None,) * 4))
            want.append((pid, *(values if vf is not None and now - vf <= TTL else (None,) * 4)))
        assert_frame_equal(store.get_online_features(lookup, [VIEW], now=now), expected(want))


def test_readers_are_not_blocked_by_an_open_write_and_see_only_committed_values(store):
    store.write(VIEW, rows([("p1", at(0), 1, 1.0, "a", True)]))
    writer = sqlite3.connect(store.path, isolation_level=None, timeout=0)
    try:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute('UPDATE fv_engagement SET sessions_7d = 99')
        assert store.get_online_features(["p1"], [VIEW], now=at(1))["sessions_7d"].to_list() == [1]
        writer.execute("COMMIT")
        assert store.get_online_features(["p1"], [VIEW], now=at(1))["sessions_7d"].to_list() == [99]
    finally:
        writer.close()


def test_view_names_differing_only_in_case_do_not_share_a_table(store):
    store.write(VIEW, rows([("p1", at(0), 1, 1.0, "a", True)]))
    shouting = FeatureView(name="ENGAGEMENT", features=FEATURES, ttl=TTL, owner="g", source="s")
    assert store.get_online_features(["p1"], [shouting], now=at(1)).row(0) == ("p1", None, None, None, None)
    with pytest.raises(FeatureStoreError, match="differ by more than letter case"):
        store.write(shouting, rows([("p1", at(0), 1, 1.0, "a", True)]))
