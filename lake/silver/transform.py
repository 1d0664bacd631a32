"""Pure frame logic of the silver layer: identity links, person resolution, typed event columns.

Nothing here reads or writes a table: every function takes and returns polars frames, so the
incremental build and the full rebuild apply the very same rules (and the tests can call them
on hand-made frames).
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from lake.schemas import SILVER_EVENTS, SILVER_IDENTITY_MAP

__all__ = ["ANON_PREFIX", "IdentityUpdate", "link_candidates", "earliest_links", "update_identities",
           "resolve_person", "silver_events"]

ANON_PREFIX = "anon:"
"""person_id of a device no user is linked to yet: ``"anon:" + anonymous_id``."""

_IDENTITY_COLS = SILVER_IDENTITY_MAP.names
_LINK_ORDER = ["anonymous_id", "linked_at", "link_event_id"]

# Properties lifted into typed columns, and the events they are read from. Revenue is
# payment_succeeded.amount only: subscription_started carries the plan price, but the money is
# counted when a payment is collected, so summing revenue never counts one payment twice.
_CURRENCY_EVENTS = ("payment_succeeded", "payment_failed", "subscription_started")
_PLAN_EVENTS = ("trial_started", "subscription_started", "payment_succeeded", "subscription_cancelled")
_ACQUISITION_EVENTS = ("page_viewed", "user_signed_up")
_ACQUISITION_PROPS = ("referrer", "utm_source", "utm_medium", "utm_campaign")


def link_candidates(rows: pl.DataFrame) -> pl.DataFrame:
    """The earliest linking event per anonymous_id among ``rows`` (events in the bronze shape).

    A linking event carries both a user_id and an anonymous_id. "Earliest" is by event_ts, then
    event_id, so the choice does not depend on arrival order.

    Returns:
        Frame with the identity_map columns, one row per anonymous_id.
    """
    links = rows.filter(pl.col("user_id").is_not_null() & pl.col("anonymous_id").is_not_null()).select(
        "anonymous_id", "user_id", pl.col("event_ts").alias("linked_at"),
        pl.col("event_id").alias("link_event_id"), pl.col("event_name").alias("link_event_name"),
    )
    return earliest_links(links)


def earliest_links(links: pl.DataFrame) -> pl.DataFrame:
    """Keep, per anonymous_id, the link with the smallest (linked_at, link_event_id)."""
    return (links.select(_IDENTITY_COLS).sort(_LINK_ORDER)
            .unique("anonymous_id", keep="first", maintain_order=True))


@dataclass(frozen=True)
class IdentityUpdate:
    """What new linking events change in the identity map.

    Attributes:
        rows: identity rows to upsert (new devices, or devices with earlier link evidence).
        added: devices linked for the first time.
        changed: devices already linked whose row changed.
        previous_person: anonymous_id -> the person_id its anonymous events had before, for every
            device whose user changed (``"anon:<id>"`` for a first link). These are the devices
            whose events must be re-attributed.
    """

    rows: pl.DataFrame
    added: int
    changed: int
    previous_person: dict[str, str]


def update_identities(existing: pl.DataFrame, candidates: pl.DataFrame) -> IdentityUpdate:
    """Merge new link candidates into the existing rows of the same devices (earliest link wins).

    Applying the same candidates twice changes nothing, and the result does not depend on the
    order in which links arrived: it is the earliest link ever seen per device.
    """
    existing = existing.select(_IDENTITY_COLS)
    merged = earliest_links(pl.concat([existing, candidates.select(_IDENTITY_COLS)]))
    if existing.height:
        upsert = merged.join(existing, on=_IDENTITY_COLS, how="anti", nulls_equal=True)
    else:
        upsert = merged
    before = dict(zip(existing["anonymous_id"].to_list(), existing["user_id"].to_list(), strict=True))
    previous: dict[str, str] = {}
    added = 0
    for anon, user in zip(upsert["anonymous_id"].to_list(), upsert["user_id"].to_list(), strict=True):
        old = before.get(anon)
        added += old is None
        if old != user:
            previous[anon] = old if old is not None else ANON_PREFIX + anon
    return IdentityUpdate(upsert, added, upsert.height - added, previous)


def resolve_person(events: pl.DataFrame, identity: pl.DataFrame) -> pl.DataFrame:
    """Set ``person_id``: the event's user_id, else its device's linked user, else ``anon:<id>``.

    Args:
        events: rows with ``user_id`` and ``anonymous_id`` (any other columns are kept).
        identity: identity rows (``anonymous_id``, ``user_id``) covering the events' devices.
    """
    mapping = identity.select("anonymous_id", pl.col("user_id").alias("_mapped_user")).unique("anonymous_id")
    joined = events.drop("person_id", strict=False).join(mapping, on="anonymous_id", how="left",
                                                         maintain_order="left")
    person = pl.coalesce("user_id", "_mapped_user", pl.lit(ANON_PREFIX) + pl.col("anonymous_id"))
    return joined.with_columns(person.alias("person_id")).drop("_mapped_user")


def _only(events: tuple[str, ...], value: pl.Expr) -> pl.Expr:
    return pl.when(pl.col("event_name").is_in(list(events))).then(value)


def silver_events(bronze: pl.DataFrame, identity: pl.DataFrame) -> pl.DataFrame:
    """Bronze rows -> silver/events rows: resolved person, typed columns, no lineage but the hour.

    Args:
        bronze: rows in the ``BRONZE_EVENTS`` shape.
        identity: identity rows covering the rows' devices.

    Returns:
        Frame with exactly the ``SILVER_EVENTS`` columns, sorted by (event_date, event_ts, event_id).
    """
    def prop(name: str) -> pl.Expr:
        # JSONPath per property, not one json_decode into a struct: a value of an unexpected type
        # (a future plan version retyping a property) must not fail the whole batch.
        return pl.col("properties").str.json_path_match(f"$.{name}")

    typed = bronze.with_columns(
        _only(("payment_succeeded",), prop("amount").cast(pl.Float64, strict=False)).alias("revenue"),
        _only(_CURRENCY_EVENTS, prop("currency")).alias("currency"),
        _only(_PLAN_EVENTS, prop("plan")).alias("plan"),
        _only(("onboarding_step_completed",), prop("step")).alias("onboarding_step"),
        _only(("feature_used",), prop("feature")).alias("feature"),
        *[_only(_ACQUISITION_EVENTS, prop(f)).alias(f) for f in _ACQUISITION_PROPS],
        pl.col("session_id").alias("client_session_id"),
    )
    return resolve_person(typed, identity).select(SILVER_EVENTS.names).sort(["event_date", "event_ts", "event_id"])
