"""Point-in-time feature retrieval: never a value from the future, nothing past its TTL."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from growth_loops.features import (
    Feature,
    FeatureStoreError,
    FeatureView,
    get_historical_features,
)

T0 = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
UTC_TS = pl.Datetime("us", "UTC")

VIEW = FeatureView(
    name="engagement",
    features=(
        Feature("sessions_7d", "int64", "Sessions in the last 7 days."),
        Feature("spend", "float64", "Spend to date."),
        Feature("tier", "string", "Plan tier."),
    ),
    ttl=timedelta(hours=5),
    owner="growth",
    source="silver.sessions",
)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def lookups(rows: list[tuple[str | None, datetime | None]], **extra: list) -> pl.DataFrame:
    return pl.DataFrame(
        {"person_id": [r[0] for r in rows], "event_timestamp": [r[1] for r in rows], **extra},
        schema_overrides={"person_id": pl.String, "event_timestamp": UTC_TS},
    )


def history(rows: list[tuple[str, datetime, int | None, float | None, str | None]]) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema={"person_id": pl.String, "valid_from": UTC_TS, "sessions_7d": pl.Int64,
                "spend": pl.Float64, "tier": pl.String},
        orient="row",
    )


def reference(entity_df: pl.DataFrame, hist: pl.DataFrame, view: FeatureView) -> pl.DataFrame:
    """Brute force: scan the whole history for every lookup row."""
    names = [f.name for f in view.features]
    hist_rows = hist.to_dicts()
    out: dict[str, list] = {name: [] for name in names}
    for lookup in entity_df.iter_rows(named=True):
        best = None
        for row in hist_rows:  # in history order, so ">=" lets the last of equal valid_froms win
            if (lookup["person_id"] is not None and lookup["event_timestamp"] is not None
                    and row["person_id"] == lookup["person_id"]
                    and row["valid_from"] <= lookup["event_timestamp"]
                    and (best is None or row["valid_from"] >= best["valid_from"])):
                best = row
        if best is not None and lookup["event_timestamp"] - best["valid_from"] > view.ttl:
            best = None
        for name in names:
            out[name].append(None if best is None else best[name])
    return entity_df.with_columns(
        pl.Series(name, out[name], dtype=hist.schema[name]) for name in names
    )


def random_case(seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    rng = random.Random(seed)
    entities = [f"p{i:02d}" for i in range(30)]
    with_history = entities[:24]  # p24..p29 have no history at all
    moments = [at(rng.randrange(0, 3000)) for _ in range(60)]  # few distinct moments -> many ties
    hist_rows = []
    for _ in range(rng.randrange(150, 250)):
        hist_rows.append((
            rng.choice(with_history),
            rng.choice(moments),
            rng.choice([None, *range(20)]),
            rng.choice([None, round(rng.uniform(0, 100), 2)]),
            rng.choice([None, "free", "pro", "team"]),
        ))
    hist = history(hist_rows)
    rows = []
    for _ in range(rng.randrange(250, 400)):
        person = rng.choice(entities + [None])
        kind = rng.random()
        if kind < 0.3:  # exactly at some valid_from (of this or another entity)
            when = rng.choice(moments)
        elif kind < 0.35:
            when = None
        elif kind < 0.4 and rows:  # an exact duplicate lookup
            person, when = rng.choice(rows)
        else:
            when = at(rng.uniform(-200, 3500))  # before any history, between rows, long after (expired)
        rows.append((person, when))
    ids = list(range(len(rows)))
    return lookups(rows, request_id=ids, note=[f"r{i}" for i in ids]), hist


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 5, 6, 7])
def test_matches_a_brute_force_reference_on_random_histories(seed):
    entity_df, hist = random_case(seed)
    got = get_historical_features(entity_df, hist, VIEW)
    expected = reference(entity_df, hist, VIEW)
    assert_frame_equal(got, expected)
    # the random case really exercises the edge cases it is meant to
    assert got["sessions_7d"].null_count() > 0 and got["tier"].drop_nulls().len() > 0
    # the same rows (and only them) come back, whatever order history arrives in
    shuffled = hist.sample(fraction=1.0, shuffle=True, seed=seed)
    assert_frame_equal(
        get_historical_features(entity_df, shuffled, VIEW), reference(entity_df, shuffled, VIEW)
    )


def test_a_value_from_the_future_is_never_returned():
    hist = history([
        ("u1", at(0), 1, 1.0, "free"),
        ("u1", at(60), 2, 2.0, "pro"),
    ])
    got = get_historical_features(
        lookups([("u1", at(-1)), ("u1", at(59.999)), ("u1", at(60)), ("u1", at(61))]), hist, VIEW
    )
    assert got["sessions_7d"].to_list() == [None, 1, 2, 2]


def test_an_expired_value_is_null_and_exactly_ttl_old_is_still_served():
    hist = history([("u1", at(0), 7, 3.5, "pro")])
    exactly_ttl_old = T0 + VIEW.ttl
    got = get_historical_features(
        lookups([("u1", exactly_ttl_old), ("u1", exactly_ttl_old + timedelta(microseconds=1))]), hist, VIEW
    )
    assert got["sessions_7d"].to_list() == [7, None]
    assert got["tier"].to_list() == ["pro", None]


def test_a_null_latest_value_is_not_backfilled_from_an_older_row():
    hist = history([("u1", at(0), 5, 1.0, "pro"), ("u1", at(10), None, None, None)])
    got = get_historical_features(lookups([("u1", at(20))]), hist, VIEW)
    assert got.row(0, named=True)["sessions_7d"] is None


def test_rows_sharing_a_valid_from_resolve_to_the_last_in_history_order():
    hist = history([("u1", at(0), 1, None, "first"), ("u1", at(0), 2, None, "second")])
    got = get_historical_features(lookups([("u1", at(1))]), hist, VIEW)
    assert got["tier"].to_list() == ["second"]


def test_order_duplicates_and_extra_columns_are_preserved():
    hist = history([("a", at(0), 1, None, None), ("b", at(0), 2, None, None)])
    entity_df = lookups(
        [("b", at(5)), ("a", at(5)), ("zz", at(5)), ("b", at(5)), (None, at(5)), ("a", at(-5))],
        request_id=[10, 11, 12, 13, 14, 15],
        label=["x", "y", "z", "x", "w", "v"],
    )
    got = get_historical_features(entity_df, hist, VIEW)
    assert got.columns == ["person_id", "event_timestamp", "request_id", "label",
                           "sessions_7d", "spend", "tier"]
    assert_frame_equal(got.select(entity_df.columns), entity_df)
    assert got["sessions_7d"].to_list() == [2, 1, None, 2, None, None]
    assert got.schema["spend"] == pl.Float64 and got.schema["tier"] == pl.String


def test_other_time_zones_are_compared_as_the_same_instants():
    hist = history([("u1", at(0), 1, None, None)])
    berlin = lookups([("u1", at(-1)), ("u1", at(0))]).with_columns(
        pl.col("event_timestamp").dt.convert_time_zone("Europe/Berlin")
    )
    got = get_historical_features(berlin, hist, VIEW)
    assert got["sessions_7d"].to_list() == [None, 1]
    assert got.schema["event_timestamp"] == pl.Datetime("us", "Europe/Berlin")


@pytest.mark.parametrize("side", ["entity_df", "history"])
def test_naive_timestamps_are_rejected(side):
    entity_df = lookups([("u1", at(0))])
    hist = history([("u1", at(0), 1, None, None)])
    if side == "entity_df":
        entity_df = entity_df.with_columns(pl.col("event_timestamp").dt.replace_time_zone(None))
    else:
        hist = hist.with_columns(pl.col("valid_from").dt.replace_time_zone(None))
    with pytest.raises(ValueError, match="time-zone-aware"):
        get_historical_features(entity_df, hist, VIEW)


def test_missing_columns_and_clashing_feature_columns_are_rejected():
    hist = history([("u1", at(0), 1, None, None)])
    with pytest.raises(ValueError, match="missing columns tier"):
        get_historical_features(lookups([("u1", at(0))]), hist.drop("tier"), VIEW)
    with pytest.raises(ValueError, match="already has columns named like features"):
        get_historical_features(lookups([("u1", at(0))], tier=["x"]), hist, VIEW)


def view(**overrides) -> FeatureView:
    settings = {"name": "v", "features": (Feature("a", "int64", "A."),), "ttl": timedelta(days=1),
                "owner": "growth", "source": "silver.events"}
    return FeatureView(**(settings | overrides))


@pytest.mark.parametrize(("overrides", "message"), [
    ({"features": ()}, "declares no features"),
    ({"features": (Feature("a", "int64", ""), Feature("a", "string", ""))}, "repeated: a"),
    ({"ttl": timedelta(0)}, "ttl must be a positive timedelta"),
    ({"ttl": timedelta(hours=-1)}, "ttl must be a positive timedelta"),
    ({"features": [Feature("a", "int64", "")]}, "not a tuple"),
    ({"owner": ""}, "owner is empty"),
    ({"features": (Feature("person_id", "string", ""),)}, "reserved"),
])
def test_invalid_feature_views_are_rejected_with_a_fix(overrides, message):
    with pytest.raises(ValueError, match=message) as excinfo:
        view(**overrides)
    assert isinstance(excinfo.value, FeatureStoreError)


def test_a_valid_view_is_frozen_and_defaults_to_person_analytics():
    v = view()
    assert (v.entity, v.requires_consent, v.feature_names) == ("person_id", "analytics", ("a",))
    with pytest.raises(AttributeError):
        v.ttl = timedelta(days=2)  # type: ignore[misc]
