"""Who is erased: the id given, every device linked to it, and the strings that identify them.

A person is their ``user_id`` plus every ``anonymous_id`` linked to it — by silver's identity map,
or by any bronze row or landed line carrying both ids — and the silver person id of their
unstitched devices, ``anon:<anonymous_id>``. Given an anonymous id, the person is the user the
identity map attributes that device to (a consent revocation sent before signing in still covers
the account), else the device alone. Ids that look like an email or IP are stored hashed by
ingestion (``lake.pii``), so their keyed hash is matched too.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field, replace

import pyarrow as pa
import pyarrow.compute as pc

from lake import delta_io
from lake.erasure.errors import InvalidSubject
from lake.paths import LakePaths
from lake.pii import PiiMasker, looks_like_pii
from lake.schemas import BRONZE_EVENTS, SILVER_IDENTITY_MAP

__all__ = ["Subject", "resolve_subject", "validate_subject_id"]

_MAX_ID = 256


def validate_subject_id(value: object) -> str:
    """The id to erase, checked: a non-empty string without control characters, at most 256 long."""
    if not isinstance(value, str):
        raise InvalidSubject(value, f"it is a {type(value).__name__}, not a string")
    if not value.strip():
        raise InvalidSubject(value, "it is empty")
    if value != value.strip():
        raise InvalidSubject(value, "it has leading or trailing whitespace (ids are matched exactly)")
    if len(value) > _MAX_ID:
        raise InvalidSubject(value, f"it is longer than {_MAX_ID} characters")
    if any(unicodedata.category(c) in ("Cc", "Cf") for c in value):
        raise InvalidSubject(value, "it contains control characters")
    if len(value) < 4:
        # Ids are matched as substrings of raw lines and JSON too: a very short one would erase other people.
        raise InvalidSubject(value, "it is shorter than 4 characters, too short to match safely")
    return value


@dataclass(frozen=True)
class Subject:
    """The ids of one person, as the erasure matches them."""

    given: str
    user_ids: frozenset[str] = frozenset()
    anonymous_ids: frozenset[str] = frozenset()
    event_ids: frozenset[str] = frozenset()
    hashed: frozenset[str] = field(default=frozenset())  # keyed hashes of ids that looked like PII

    @property
    def exact(self) -> frozenset[str]:
        """Values an identity column (user_id, anonymous_id, person_id) holds for this person."""
        return self.user_ids | self.anonymous_ids | self.hashed | {f"anon:{a}" for a in self.anonymous_ids}

    @property
    def needles(self) -> tuple[str, ...]:
        """Substrings that mark free text (raw lines, JSON) as mentioning this person; longest first."""
        return tuple(sorted(self.user_ids | self.anonymous_ids | self.hashed, key=lambda s: (-len(s), s)))

    def with_ids(
        self,
        *,
        users: set[str] | frozenset[str] = frozenset(),
        anons: set[str] | frozenset[str] = frozenset(),
        events: set[str] | frozenset[str] = frozenset(),
        masker: PiiMasker | None = None,
    ) -> Subject:
        users = {u for u in users if isinstance(u, str) and u}
        anons = {a for a in anons if isinstance(a, str) and a}
        hashed = set(self.hashed)
        if masker is not None:
            hashed |= {masker.hash(v) for v in users | anons if looks_like_pii(v)}
        return replace(
            self,
            user_ids=self.user_ids | users,
            anonymous_ids=self.anonymous_ids | anons,
            event_ids=self.event_ids | {e for e in events if isinstance(e, str) and e},
            hashed=frozenset(hashed),
        )


def _is_in(column: pa.ChunkedArray, values: frozenset[str] | set[str]) -> pa.ChunkedArray:
    if not values:
        return pa.chunked_array([pa.array([False] * len(column), pa.bool_())])
    return pc.fill_null(pc.is_in(column, value_set=pa.array(sorted(values), pa.string())), False)


def resolve_subject(paths: LakePaths, given: str, masker: PiiMasker) -> Subject:
    """Everything the tables know about ``given``: linked devices and the person's bronze event ids.

    Landed lines are searched for further links by :mod:`lake.erasure.landing` (they may hold
    devices whose events were never stored, e.g. dropped for consent).
    """
    ids = Subject(given=given).with_ids(users={given}, masker=masker)
    g = ids.user_ids | ids.hashed
    im = delta_io.read(paths.silver_identity_map, SILVER_IDENTITY_MAP, columns=["user_id", "anonymous_id"])
    bronze = delta_io.read(paths.bronze_events, BRONZE_EVENTS, columns=["event_id", "user_id", "anonymous_id"])
    bronze = bronze.cast(pa.schema([BRONZE_EVENTS.field(c) for c in bronze.column_names]))
    known_as_user = bool(pc.any(_is_in(im["user_id"], g)).as_py() or pc.any(_is_in(bronze["user_id"], g)).as_py())
    attributed = {u for u in im.filter(_is_in(im["anonymous_id"], g))["user_id"].to_pylist() if u}
    if known_as_user or not (attributed or pc.any(_is_in(bronze["anonymous_id"], g)).as_py()):
        subject = Subject(given=given).with_ids(users=g, masker=masker)
    else:
        # ``given`` is a device: the person is the user the identity map attributes it to, if any.
        subject = Subject(given=given).with_ids(users=attributed, anons=g, masker=masker)
    users = subject.user_ids | subject.hashed if subject.user_ids else frozenset()
    anons = set(im.filter(_is_in(im["user_id"], users))["anonymous_id"].to_pylist())
    anons |= set(bronze.filter(_is_in(bronze["user_id"], users))["anonymous_id"].to_pylist())
    subject = subject.with_ids(anons={a for a in anons if a}, masker=masker)
    mine = pc.or_(_is_in(bronze["user_id"], subject.exact), _is_in(bronze["anonymous_id"], subject.exact))
    return subject.with_ids(events=set(bronze.filter(mine)["event_id"].to_pylist()))
