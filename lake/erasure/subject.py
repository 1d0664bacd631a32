"""Who is erased: the subject's exact ids, resolved through the identity graph.

The subject is a **user id** and the **devices** (anonymous ids) whose anonymous events are theirs.
Ids are compared whole, after parsing (a column value, a line's id field), never as substrings:
``user-1`` is not ``user-10``, and ``1001`` is not an event id that contains it.

* **Their devices.** Every anonymous id seen with their user id — in silver's identity map, in a
  bronze row, or in a landed line (it may hold devices whose events were never stored, e.g.
  dropped for consent) — is one of their devices.
* **Shared devices** (a device another user id was seen with too): an event that carries a user id
  belongs to that user, always — another user's events on it are never erased. An *anonymous*
  event on it (no user id) belongs to the user silver attributes the device to, by silver's own
  rule (:func:`lake.silver.transform.earliest_links`): the user of the **earliest** event carrying
  both ids (by event time, then event id), over the identity map and bronze. So the anonymous events
  of a device the subject linked first go with them; those of a device another user linked first
  stay (they are that user's in silver). A device that only landed lines link (never in bronze) is
  attributed by the same rule over those lines.
* **Given an anonymous id**, the person is the user that rule attributes the device to (a consent
  revocation sent before signing in still covers the account), else the device alone.
* Ids that look like an email or IP are stored hashed by ingestion (``lake.pii``), so their keyed
  hash is matched too.
* **Their email and phone**: the values of the tracking plan's ``pii: true`` properties named like
  an email or phone in their own events (landed raw, stored as keyed hashes). Both forms are
  removed wherever else they appear — unless another person's own event carries the same value
  in such a property (a shared family address is theirs too, and stays in their rows). Names and
  other plan-marked PII go with the subject's rows only: a first name is not unique to a person.
* An id the lake never saw (in the identity map, bronze or a landed line's id fields) is
  **unknown**: the erasure then matches nothing but exact identity values, and reports that it
  found nothing.

When a device's identity row is the subject's and another user was seen with it too, the erasure
replaces that row by the link silver's rule gives without the subject (:attr:`Subject.successors`),
so the identity map stays what a rebuild from the remaining bronze would produce.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from lake import delta_io
from lake.erasure.errors import InvalidSubject
from lake.erasure.lines import LineIds, landed_files, parse_landed_line, read_landed
from lake.paths import LakePaths
from lake.pii import PiiMasker, looks_like_pii
from lake.schemas import BRONZE_EVENTS, SILVER_IDENTITY_MAP

if TYPE_CHECKING:
    import polars as pl

    from lake.contracts.plan import TrackingPlan

__all__ = ["Subject", "identifying_pii", "resolve_subject", "validate_subject_id"]

_MAX_ID = 256
ANON_PREFIX = "anon:"  # lake.silver.transform.ANON_PREFIX: person_id of a device no user is linked to
# Plan-marked PII properties whose value identifies one person (removed wherever it appears).
_IDENTIFYING = re.compile(r"e_?mail|phone|mobile")
# A mention is a whole token: the id not continued by another character an id can hold.
_BEFORE = r"(?<![\w\-.@+])"
_AFTER = r"(?![\w\-@+])(?!\.\w)"
_BEFORE_B = rb"(?<![\w\-.@+\x80-\xff])"
_AFTER_B = rb"(?![\w\-@+\x80-\xff])(?!\.[\w\x80-\xff])"


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
        # Ids are compared whole, but mentions in free text are whole tokens: a very short one is
        # too likely to be an ordinary word or number of someone else's text.
        raise InvalidSubject(value, "it is shorter than 4 characters, too short to match safely")
    return value


@dataclass(frozen=True)
class Subject:
    """The exact ids of one person, as the erasure matches them.

    Attributes:
        given: The id the erasure was asked for.
        user_ids: Their user id (and its keyed hash when it looks like an email or IP).
        anonymous_ids: The devices attributed to them: their anonymous events go.
        shared_devices: Their devices that another user id was seen with too (attributed to them or
            not). Events with another user's id on them stay; these ids are not searched in free
            text, nor in the leftover check (they are the other user's device too).
        event_ids: Event ids of their bronze rows and landed lines (matches rows that carry no id).
        pii: Their email / phone values, raw and keyed-hashed (not shared with another person).
        known: Whether the lake saw the id at all; an unknown id matches exact identity values only.
        successors: Identity rows (``silver/identity_map`` columns) that replace theirs for devices
            another user was seen with too, by silver's earliest-link rule.
    """

    given: str
    user_ids: frozenset[str] = frozenset()
    anonymous_ids: frozenset[str] = frozenset()
    shared_devices: frozenset[str] = frozenset()
    event_ids: frozenset[str] = frozenset()
    pii: frozenset[str] = field(default=frozenset())
    known: bool = True
    successors: tuple[dict[str, Any], ...] = ()

    @property
    def persons(self) -> frozenset[str]:
        """Values ``person_id`` holds for them: the user id, and ``anon:<device>`` of their devices."""
        return self.user_ids | {ANON_PREFIX + a for a in self.anonymous_ids}

    @property
    def exact(self) -> frozenset[str]:
        """Every value an identity column (user_id, anonymous_id, person_id) holds for them."""
        return self.user_ids | self.anonymous_ids | self.persons

    @property
    def tokens(self) -> tuple[str, ...]:
        """What marks free text as mentioning them (whole tokens), longest first; none when unknown."""
        if not self.known:
            return ()
        own = (self.exact - self.shared_devices) | self.pii
        return tuple(sorted(own, key=lambda s: (-len(s), s)))

    @cached_property
    def pattern(self) -> re.Pattern[str] | None:
        """The whole-token pattern of :attr:`tokens` (None when there are none)."""
        if not self.tokens:
            return None
        return re.compile(_BEFORE + "(?:" + "|".join(map(re.escape, self.tokens)) + ")" + _AFTER)

    @cached_property
    def byte_pattern(self) -> re.Pattern[bytes] | None:
        """:attr:`pattern` for raw bytes (UTF-8)."""
        if not self.tokens:
            return None
        alts = b"|".join(re.escape(t.encode()) for t in self.tokens)
        return re.compile(_BEFORE_B + b"(?:" + alts + b")" + _AFTER_B)

    def mentioned_in(self, text: str) -> bool:
        """Whether ``text`` holds one of :attr:`tokens` as a whole token."""
        return self.pattern is not None and self.pattern.search(text) is not None

    def redact(self, text: str, replacement: str) -> str:
        """``text`` with every whole-token mention replaced."""
        return text if self.pattern is None else self.pattern.sub(replacement, text)

    def owns(self, ids: LineIds) -> bool:
        """Whether a line (or raw record) with these parsed ids is theirs (the most specific id decides)."""
        if ids.user_id is not None:
            return ids.user_id in self.user_ids
        if ids.anonymous_id is not None:
            return ids.anonymous_id in self.anonymous_ids
        return ids.event_id is not None and ids.event_id in self.event_ids

    def with_ids(
        self,
        *,
        users: set[str] | frozenset[str] = frozenset(),
        anons: set[str] | frozenset[str] = frozenset(),
        events: set[str] | frozenset[str] = frozenset(),
        masker: PiiMasker | None = None,
    ) -> Subject:
        """A copy with more ids (their keyed hashes too, with ``masker``, when they look like PII)."""
        users = _forms({u for u in users if isinstance(u, str) and u}, masker)
        anons = _forms({a for a in anons if isinstance(a, str) and a}, masker)
        return replace(
            self,
            user_ids=self.user_ids | users,
            anonymous_ids=self.anonymous_ids | anons,
            event_ids=self.event_ids | {e for e in events if isinstance(e, str) and e},
        )


def _forms(values: set[str] | frozenset[str], masker: PiiMasker | None) -> frozenset[str]:
    out = set(values)
    if masker is not None:
        out |= {masker.hash(v) for v in values if looks_like_pii(v)}
    return frozenset(out)


def identifying_pii(plan: TrackingPlan) -> dict[str, frozenset[str]]:
    """Per event: its ``pii: true`` properties whose value identifies one person (email, phone)."""
    out = {}
    for name, spec in plan.events.items():
        props = frozenset(p for p in spec.pii if _IDENTIFYING.search(p))
        if props:
            out[name] = props
    return out


# -- resolution ------------------------------------------------------------------------------------


class _Landed:
    """Parsed ids of the landed lines that contain given ids (each id searched for once)."""

    def __init__(self, paths: LakePaths, plan: TrackingPlan) -> None:
        self._paths, self._plan = paths, plan
        self._searched: set[str] = set()
        self.lines: dict[tuple[str, int], LineIds] = {}

    def search(self, ids: set[str] | frozenset[str]) -> None:
        new = sorted(i for i in ids if i and i not in self._searched)
        if not new:
            return
        self._searched.update(new)
        needles = [n.encode() for n in new]
        for _, f, convert in landed_files(self._paths, plan=self._plan):
            data = read_landed(f.path, self._paths)
            if not any(n in data for n in needles):
                continue
            for i, raw in enumerate(data.split(b"\n")):
                if (f.path, i) in self.lines or not any(n in raw for n in needles):
                    continue
                line_ids = parse_landed_line(raw, convert)
                if line_ids is not None and line_ids.has_ids:
                    self.lines[(f.path, i)] = line_ids


def _in(column: pl.Series, values: set[str] | frozenset[str]) -> pl.Series:
    import polars as pl

    return column.is_in(pl.Series(sorted(values), dtype=pl.String)).fill_null(False)


def _attribute(
    devices: set[str], im: pl.DataFrame, bronze: pl.DataFrame, landed: _Landed
) -> dict[str, str]:
    """The user silver attributes each device to: the earliest link over identity map and bronze,
    else over the landed lines (devices silver has no link for). Devices without any link are absent."""
    import polars as pl

    from lake.silver.transform import earliest_links

    if not devices:
        return {}
    links = pl.concat(
        [
            im.filter(_in(im["anonymous_id"], devices)).select(SILVER_IDENTITY_MAP.names),
            bronze.filter(_in(bronze["anonymous_id"], devices) & bronze["user_id"].is_not_null()).select(
                "anonymous_id",
                "user_id",
                pl.col("event_ts").alias("linked_at"),
                pl.col("event_id").alias("link_event_id"),
                pl.col("event_name").alias("link_event_name"),
            ),
        ],
        how="vertical_relaxed",
    )
    owner = dict(earliest_links(links).select("anonymous_id", "user_id").iter_rows())
    far = (1, None)
    landed_links: dict[str, tuple[Any, str, str]] = {}
    for ids in landed.lines.values():
        d = ids.anonymous_id
        if d is None or ids.user_id is None or d not in devices or d in owner:
            continue
        key = (0, ids.timestamp) if ids.timestamp is not None else far
        candidate = (key, ids.event_id or "", ids.user_id)
        best = landed_links.get(d)
        if best is None or _before(candidate, best):
            landed_links[d] = candidate
    owner.update({d: c[2] for d, c in landed_links.items()})
    return owner


def _before(a: tuple, b: tuple) -> bool:
    (ka, ea, _), (kb, eb, _) = a, b
    if ka[0] != kb[0]:
        return ka[0] < kb[0]
    if ka[1] != kb[1]:
        return ka[1] < kb[1]
    return ea < eb


def resolve_subject(paths: LakePaths, given: str, masker: PiiMasker, *, plan: TrackingPlan) -> Subject:
    """The exact ids of the person ``given`` names (see the module docstring for the rules).

    Args:
        paths: the lake.
        given: a user id, or an anonymous id.
        masker: the keyed hasher ingestion used (ids and PII are stored hashed).
        plan: the tracking plan (which properties are PII; Segment landing files are read with it).

    Returns:
        The subject; ``known`` is False when no identity map row, bronze row or landed line carries
        ``given`` in an id field.
    """
    import polars as pl

    forms = _forms({given}, masker)
    im = pl.from_arrow(delta_io.read(paths.silver_identity_map, SILVER_IDENTITY_MAP))
    cols = ["event_id", "event_name", "event_ts", "user_id", "anonymous_id"]
    bronze_arrow = delta_io.read(paths.bronze_events, BRONZE_EVENTS, columns=cols)
    bronze = pl.from_arrow(bronze_arrow.cast(pa.schema([BRONZE_EVENTS.field(c) for c in cols])))
    assert isinstance(im, pl.DataFrame) and isinstance(bronze, pl.DataFrame)
    landed = _Landed(paths, plan)
    landed.search(forms)

    def users_seen() -> set[str]:
        return {i.user_id for i in landed.lines.values() if i.user_id is not None}

    as_user = bool(_in(im["user_id"], forms).any() or _in(bronze["user_id"], forms).any() or forms & users_seen())
    landed_devices = {i.anonymous_id for i in landed.lines.values() if i.anonymous_id is not None}
    seed = {f for f in forms if _in(im["anonymous_id"], {f}).any() or _in(bronze["anonymous_id"], {f}).any()}
    seed |= forms & landed_devices
    if as_user:
        users, seed = set(forms), set()
    elif seed:
        users = set(_forms(set(_attribute(seed, im, bronze, landed).values()), masker))
    else:
        return Subject(given=given, user_ids=forms, known=False)

    if users:
        landed.search(users)
    linked = set(im.filter(_in(im["user_id"], users))["anonymous_id"].to_list())
    linked |= set(bronze.filter(_in(bronze["user_id"], users))["anonymous_id"].drop_nulls().to_list())
    linked |= {i.anonymous_id for i in landed.lines.values() if i.user_id in users and i.anonymous_id is not None}
    candidates = linked | seed
    landed.search(candidates)
    owner = _attribute(candidates, im, bronze, landed)
    mine = {d for d in candidates if owner.get(d) is None or owner[d] in users}
    devices = _forms(mine, masker)

    # Who else used their devices: those devices are shared (whichever way they are attributed).
    others = set(bronze.filter(_in(bronze["anonymous_id"], candidates) & ~_in(bronze["user_id"], users))
                 .drop_nulls("user_id")["anonymous_id"].to_list())
    others |= set(im.filter(_in(im["anonymous_id"], candidates) & ~_in(im["user_id"], users))["anonymous_id"].to_list())
    others |= {i.anonymous_id for i in landed.lines.values()
               if i.anonymous_id in candidates and i.user_id is not None and i.user_id not in users}
    subject = Subject(
        given=given, user_ids=frozenset(users), anonymous_ids=devices, shared_devices=_forms(others, masker)
    )

    by_user = _in(bronze["user_id"], users)
    by_device = bronze["user_id"].is_null() & _in(bronze["anonymous_id"], devices)
    own_rows = bronze.filter(by_user | by_device)
    own_lines = [i for i in landed.lines.values() if subject.owns(i)]
    events = set(own_rows["event_id"].to_list()) | {i.event_id for i in own_lines if i.event_id}
    subject = replace(subject, event_ids=frozenset(events))
    pii = _pii(paths, subject, own_rows, own_lines, masker, plan)
    return replace(subject, pii=pii, successors=_successors(im, bronze, users))


def _prop_values(props: Any, names: frozenset[str]) -> list[Any]:
    if type(props) is not dict:
        return []
    return [props[n] for n in names if props.get(n) is not None]


def _pii(
    paths: LakePaths,
    subject: Subject,
    own_rows: pl.DataFrame,
    own_lines: list[LineIds],
    masker: PiiMasker,
    plan: TrackingPlan,
) -> frozenset[str]:
    """Their email / phone values, raw (landed lines) and hashed (as ingestion stores them), minus the
    values another person's own events carry too."""
    import pyarrow.dataset as pads

    kinds = identifying_pii(plan)
    if not kinds:
        return frozenset()
    raw: set[str] = set()
    hashed: set[str] = set()
    for ids in own_lines:
        ev = ids.event or {}
        for value in _prop_values(ev.get("properties"), kinds.get(ev.get("event_name", ""), frozenset())):
            raw.add(value if isinstance(value, str) else str(value))
            hashed.add(masker.hash(value))
    mine = own_rows.filter(own_rows["event_name"].is_in(sorted(kinds)))
    events = sorted(mine["event_id"].to_list())
    flt = pads.field("event_name").isin(sorted(kinds))
    rows = delta_io.read(paths.bronze_events, BRONZE_EVENTS, columns=["event_id", "event_name", "user_id",
                                                                      "anonymous_id", "properties"], filter=flt)
    theirs = pc.is_in(rows["event_id"], value_set=pa.array(events, pa.string()))
    own = rows.filter(theirs)
    for name, props in zip(own["event_name"].to_pylist(), own["properties"].to_pylist(), strict=True):
        hashed |= {v for v in _prop_values(_loads(props), kinds.get(name, frozenset())) if isinstance(v, str)}
    if not hashed:
        return frozenset(raw)
    # Shared values: another person's own event carries one in such a property.
    others = rows.filter(pc.invert(theirs))
    maybe: Any = pa.array([False] * others.num_rows, pa.bool_())
    for h in sorted(hashed):
        maybe = pc.or_(maybe, pc.fill_null(pc.match_substring(others["properties"], h), False))
    shared: set[str] = set()
    others = others.filter(maybe)
    for name, props in zip(others["event_name"].to_pylist(), others["properties"].to_pylist(), strict=True):
        shared |= {v for v in _prop_values(_loads(props), kinds.get(name, frozenset())) if v in hashed}
    return frozenset({v for v in raw if masker.hash(v) not in shared} | (hashed - shared))


def _loads(text: str | None) -> Any:
    try:
        return orjson.loads(text) if text else None
    except orjson.JSONDecodeError:
        return None


def _successors(im: pl.DataFrame, bronze: pl.DataFrame, users: set[str]) -> tuple[dict[str, Any], ...]:
    """Identity rows replacing theirs, for devices another user linked too: the earliest of the other
    users' bronze links (silver's rule, without the subject)."""
    import polars as pl

    from lake.silver.transform import earliest_links

    held = set(im.filter(_in(im["user_id"], users))["anonymous_id"].to_list())
    if not held:
        return ()
    links = bronze.filter(
        _in(bronze["anonymous_id"], held) & bronze["user_id"].is_not_null() & ~_in(bronze["user_id"], users)
    ).select(
        "anonymous_id",
        "user_id",
        pl.col("event_ts").alias("linked_at"),
        pl.col("event_id").alias("link_event_id"),
        pl.col("event_name").alias("link_event_name"),
    )
    return tuple(earliest_links(links).sort("anonymous_id").to_dicts())
