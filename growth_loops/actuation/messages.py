"""The message outbox: what a loop decided to send, queued for the email sender, exactly once.

A Delta table at ``$ROOT/delta/decisions/message_outbox``, partitioned by ``decision_day``, one row
per message. Rows are only ever inserted, and later flipped from ``pending`` to ``sent``:

* :func:`enqueue` inserts the messages whose ``message_id`` is not in the table yet. The id is
  deterministic — sha256 of (loop, decision day, person, template) — so re-running a day's
  decisions, or resuming after a crash, inserts nothing twice. It refuses messages to people
  without marketing consent (skipped and counted, never stored).
* :func:`pending` is what the sender reads; :func:`mark_sent` records what it sent (idempotent:
  marking twice keeps the first ``sent_at``);
* :func:`withhold` flips a loop's pending messages to ``withheld`` (the kill switch: the sender
  never sees them), :func:`release` puts withheld ones back to ``pending``.

Both writes are Delta MERGEs keyed on ``message_id`` (and ``decision_day``, so only that day's
files are scanned), taken under the outbox's writer lock locally; a MERGE that changes nothing
commits nothing, so an all-duplicate enqueue leaves the table version as it was.

``payload`` holds the template's variables as JSON, never an email address: the sender resolves
``person_id`` to an address in the system that owns it (no raw PII past ingestion).
"""

from __future__ import annotations

import datetime
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import polars as pl
import pyarrow as pa
from deltalake import CommitProperties

from growth_loops.actuation.flags import ActuationError, canonical_json
from lake import delta_io
from lake.locks import table_lock
from lake.paths import LakePaths

__all__ = ["MESSAGE_OUTBOX", "EnqueueResult", "OutboxMessage", "enqueue", "mark_sent", "message_id",
           "outbox_path", "pending", "recent_counts", "release", "withhold"]

_TS = pa.timestamp("us", tz="UTC")
_LOCK = "decisions_message_outbox"
_DAY = "decision_day"

MESSAGE_OUTBOX = pa.schema(
    [
        pa.field("message_id", pa.string(), nullable=False),  # sha256(loop, decision_day, person_id, template)
        pa.field("loop", pa.string(), nullable=False),
        pa.field("decision_id", pa.string(), nullable=False),
        pa.field(_DAY, pa.date32(), nullable=False),  # partition
        pa.field("person_id", pa.string(), nullable=False),
        pa.field("template", pa.string(), nullable=False),
        pa.field("channel", pa.string(), nullable=False),  # email
        pa.field("payload", pa.string(), nullable=False),  # JSON object: the template's variables
        pa.field("created_at", _TS, nullable=False),
        pa.field("status", pa.string(), nullable=False),  # pending | sent | withheld
        pa.field("sent_at", _TS),
    ]
)

Channel = Literal["email"]
_CHANNELS: tuple[str, ...] = ("email",)


def outbox_path(paths: LakePaths) -> str:
    """``$ROOT/delta/decisions/message_outbox``."""
    return paths.table("decisions", "message_outbox")


def message_id(loop: str, decision_day: datetime.date, person_id: str, template: str) -> str:
    """The deterministic id of the message ``loop`` decided on ``decision_day`` to send ``person_id``."""
    key = json.dumps([loop, decision_day.isoformat(), person_id, template], ensure_ascii=False)
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True, kw_only=True)
class OutboxMessage:
    """One message a loop decided to send.

    Attributes:
        loop: The deciding loop, e.g. ``winback``.
        decision_id: The decision (in the loop's audit log) this message actuates.
        decision_day: The day the decision is for.
        person_id: The recipient (pseudonymous person id).
        template: The email template.
        payload: The template's variables (JSON-serializable; no email addresses).
        channel: ``email``.
    """

    loop: str
    decision_id: str
    decision_day: datetime.date
    person_id: str
    template: str
    payload: Mapping[str, Any] = field(default_factory=dict)
    channel: Channel = "email"

    def __post_init__(self) -> None:
        subject = f"message of loop {self.loop!r} to {self.person_id!r}"
        for name in ("loop", "decision_id", "person_id", "template"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ActuationError(subject, f"{name} {value!r} is not a non-empty string", f"Give the {name}.")
        if not isinstance(self.decision_day, datetime.date) or isinstance(self.decision_day, datetime.datetime):
            raise ActuationError(subject, f"decision_day {self.decision_day!r} is not a date",
                                 "Pass a datetime.date (the day of the decision).")
        if self.channel not in _CHANNELS:
            raise ActuationError(subject, f"channel {self.channel!r} is not supported", f"Use one of {_CHANNELS}.")
        if not isinstance(self.payload, Mapping):
            raise ActuationError(subject, "the payload is not a mapping", "Pass the template's variables as a dict.")
        try:
            canonical_json(dict(self.payload))
        except (TypeError, ValueError) as exc:
            raise ActuationError(subject, f"the payload is not JSON-serializable ({exc})",
                                 "Use str, int, float, bool, None, lists and dicts.") from None

    @property
    def message_id(self) -> str:
        return message_id(self.loop, self.decision_day, self.person_id, self.template)


@dataclass(frozen=True)
class EnqueueResult:
    """What :func:`enqueue` did.

    Attributes:
        enqueued: Messages inserted (now pending).
        duplicates_skipped: Messages already in the outbox, or repeated within the call.
        no_consent_skipped: Messages to people without marketing consent (not stored).
        delta_version: The outbox's version afterwards (None while it does not exist).
    """

    enqueued: int
    duplicates_skipped: int
    no_consent_skipped: int
    delta_version: int | None = None


def _consent_set(consented: Iterable[str] | pl.Series) -> set[str]:
    if isinstance(consented, pl.Series):
        return set(consented.drop_nulls().cast(pl.String).to_list())
    if isinstance(consented, (str, bytes)):
        raise ActuationError("consent", "a single string was passed as the set of consenting people",
                             "Pass a set (or Series) of person ids with marketing consent.")
    return set(consented)


def _commit(operation: str, metadata: Mapping[str, Any]) -> CommitProperties:
    # The same custom-metadata convention as lake.delta_io (growthlake.operation, growthlake.<key>).
    meta = {"growthlake.operation": operation}
    meta.update({f"growthlake.{k}": str(v) for k, v in metadata.items()})
    return CommitProperties(custom_metadata=meta)


def enqueue(paths: LakePaths, messages: Iterable[OutboxMessage], *, consented: Iterable[str] | pl.Series,
            now: datetime.datetime | None = None) -> EnqueueResult:
    """Queue messages for sending, each at most once ever, only to people with marketing consent.

    Args:
        paths: The lake.
        messages: The decided messages.
        consented: Person ids with marketing consent now; messages to anyone else are skipped.
        now: ``created_at`` of the inserted rows (UTC); the current time by default.

    Returns:
        Counts of inserted, duplicate and no-consent messages, and the outbox's version.
    """
    created = _utc(now or datetime.datetime.now(datetime.UTC), "now")
    allowed = _consent_set(consented)
    rows: dict[str, OutboxMessage] = {}
    duplicates = no_consent = 0
    for msg in messages:
        if not isinstance(msg, OutboxMessage):
            raise ActuationError("message outbox", f"{msg!r} is not an OutboxMessage", "Build OutboxMessage objects.")
        if msg.person_id not in allowed:
            no_consent += 1
            continue
        mid = msg.message_id
        if mid in rows:
            duplicates += 1  # the same message twice in one call: queue it once
            continue
        rows[mid] = msg
    uri = outbox_path(paths)
    if not rows:
        return EnqueueResult(0, duplicates, no_consent, delta_io.version(uri))
    ordered = sorted(rows.items(), key=lambda kv: (kv[1].decision_day, kv[0]))
    data = pa.Table.from_pylist(
        [{"message_id": mid, "loop": m.loop, "decision_id": m.decision_id, _DAY: m.decision_day,
          "person_id": m.person_id, "template": m.template, "channel": m.channel,
          "payload": canonical_json(dict(m.payload)), "created_at": created, "status": "pending", "sent_at": None}
         for mid, m in ordered],
        schema=MESSAGE_OUTBOX,
    )
    days = sorted({m.decision_day.isoformat() for m in rows.values()})
    meta = {"days": days, "messages": data.num_rows}
    with table_lock(paths, _LOCK):
        inserted = delta_io.insert_missing(uri, data, on=(_DAY, "message_id"), partition_by=[_DAY],
                                           operation="message-enqueue", metadata=meta)
        version = delta_io.version(uri)
    return EnqueueResult(inserted, duplicates + data.num_rows - inserted, no_consent, version)


def pending(paths: LakePaths, *, decision_day: datetime.date | None = None, loop: str | None = None) -> pl.DataFrame:
    """Messages not sent yet (optionally of one day or loop), oldest first."""
    parts = [(_DAY, "=", decision_day)] if decision_day is not None else None
    # Rows are filtered after reading, not pushed down: files rewritten by MERGE hold string_view
    # columns, which pyarrow cannot compare with plain string scalars in a dataset filter.
    frame = _frame(delta_io.read(outbox_path(paths), MESSAGE_OUTBOX, partitions=parts))
    keep = pl.col("status") == "pending"
    if loop is not None:
        keep = keep & (pl.col("loop") == loop)
    return frame.filter(keep).sort("created_at", _DAY, "message_id")


def _frame(table: pa.Table) -> pl.DataFrame:
    frame = pl.from_arrow(table.cast(pa.schema([MESSAGE_OUTBOX.field(n) for n in table.column_names])))
    assert isinstance(frame, pl.DataFrame)
    return frame


def mark_sent(paths: LakePaths, message_ids: Iterable[str], at: datetime.datetime) -> int:
    """Record that the sender sent these messages at ``at`` (UTC).

    Idempotent: messages already marked sent keep their first ``sent_at``; marking nothing new
    commits nothing.

    Returns:
        How many messages went from pending to sent.

    Raises:
        ActuationError: Some ids are not in the outbox (nothing is marked then).
    """
    sent_at = _utc(at, "at")
    ids = sorted(set(message_ids))
    if not ids:
        return 0
    uri = outbox_path(paths)
    with table_lock(paths, _LOCK):
        known = _frame(delta_io.read(uri, MESSAGE_OUTBOX, columns=["message_id", _DAY, "status"])).filter(
            pl.col("message_id").is_in(ids))
        unknown = sorted(set(ids) - set(known["message_id"].to_list()))
        if unknown:
            shown = ", ".join(unknown[:5]) + (" …" if len(unknown) > 5 else "")
            raise ActuationError("message outbox", f"{len(unknown)} message id(s) are not in the outbox ({shown})",
                                 "Mark only ids read from pending(); nothing was marked.")
        todo = known.filter(pl.col("status") == "pending")
        if todo.height == 0:
            return 0
        source = pa.table({"message_id": todo["message_id"].to_arrow().cast(pa.string()),
                           _DAY: todo[_DAY].to_arrow().cast(pa.date32()),
                           "sent_at": pa.array([sent_at] * todo.height, _TS)})
        dt = delta_io.open_table(uri)
        assert dt is not None  # known rows were read from it
        metrics = (
            dt.merge(source, "t.decision_day = s.decision_day AND t.message_id = s.message_id",
                     source_alias="s", target_alias="t",
                     commit_properties=_commit("message-mark-sent", {"messages": todo.height}))
            .when_matched_update({"status": "'sent'", "sent_at": "s.sent_at"}, predicate="t.status = 'pending'")
            .execute()
        )
    return int(metrics["num_target_rows_updated"])


def _utc(ts: datetime.datetime, name: str) -> datetime.datetime:
    if not isinstance(ts, datetime.datetime) or ts.tzinfo is None:
        raise ActuationError(f"timestamp {name}={ts!r}", "it is not a timezone-aware datetime",
                             "Pass an aware datetime, e.g. datetime.now(datetime.UTC).")
    return ts.astimezone(datetime.UTC)



def withhold(paths: LakePaths, *, loop: str) -> list[str]:
    """Flip every pending message of ``loop`` to ``withheld`` (not sent); return their ids."""
    return _flip(paths, loop=loop, ids=None, source="pending", target="withheld")


def release(paths: LakePaths, message_ids: Iterable[str]) -> list[str]:
    """Put withheld messages back to ``pending``; return the ids that were withheld."""
    return _flip(paths, loop=None, ids=sorted(set(message_ids)), source="withheld", target="pending")


def _flip(paths: LakePaths, *, loop: str | None, ids: list[str] | None, source: str, target: str) -> list[str]:
    uri = outbox_path(paths)
    with table_lock(paths, _LOCK):
        frame = _frame(delta_io.read(uri, MESSAGE_OUTBOX, columns=["message_id", _DAY, "loop", "status"]))
        todo = frame.filter(pl.col("status") == source)
        if loop is not None:
            todo = todo.filter(pl.col("loop") == loop)
        if ids is not None:
            todo = todo.filter(pl.col("message_id").is_in(ids))
        if todo.height == 0:
            return []
        source_rows = pa.table({"message_id": todo["message_id"].to_arrow().cast(pa.string()),
                                _DAY: todo[_DAY].to_arrow().cast(pa.date32())})
        dt = delta_io.open_table(uri)
        assert dt is not None  # rows were read from it
        (dt.merge(source_rows, "t.decision_day = s.decision_day AND t.message_id = s.message_id",
                  source_alias="s", target_alias="t",
                  commit_properties=_commit(f"message-{target}", {"messages": todo.height}))
         .when_matched_update({"status": f"'{target}'"}, predicate=f"t.status = '{source}'")
         .execute())
    return sorted(todo["message_id"].to_list())


def recent_counts(paths: LakePaths, *, since: datetime.date, until: datetime.date) -> dict[str, int]:
    """Messages per person decided on ``since .. until`` (inclusive) that were queued or sent."""
    frame = _frame(delta_io.read(outbox_path(paths), MESSAGE_OUTBOX, columns=["person_id", _DAY, "status"]))
    recent = frame.filter(pl.col(_DAY).is_between(since, until) & pl.col("status").is_in(["pending", "sent"]))
    return dict(recent.group_by("person_id").len().iter_rows())
