"""Segment / RudderStack messages -> the canonical event model (pure, no I/O but the mapping file).

One Segment message per landed line (the format of the Segment S3 and RudderStack object-storage
destinations, and of ``growthlake collect``): ``messageId``, ``type`` (track | identify | page |
screen | alias | group), ``event``, ``userId``, ``anonymousId``, ``properties`` / ``traits``,
``context.ip`` / ``userAgent`` / ``locale``, ``timestamp`` / ``originalTimestamp`` / ``sentAt`` /
``receivedAt`` and consent in ``context.consent`` (Segment) or ``context.consentManagement``
(RudderStack). :class:`SegmentMapper` turns one parsed message into one canonical event dict; the
ingestion then applies the same contract, PII, consent and exactly-once rules as to a canonical
line (the line stays the unit). How names and consent map is configured in
``lake/contracts/segment_mapping.yaml`` (``$GROWTHLAKE_SEGMENT_MAPPING`` overrides it).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml

from lake.contracts.plan import TrackingPlan
from lake.contracts.validate import parse_timestamp
from lake.errors import GrowthlakeError
from lake.settings import current as current_settings

__all__ = [
    "DEFAULT_MAPPING_PATH",
    "SEGMENT_TYPES",
    "SegmentMapper",
    "SegmentMapping",
    "SegmentMappingError",
    "corrected_timestamp",
    "load_segment_mapping",
    "map_consent",
    "snake_case",
]

DEFAULT_MAPPING_PATH = Path(__file__).resolve().parents[1] / "contracts" / "segment_mapping.yaml"
SEGMENT_TYPES = frozenset({"track", "identify", "page", "screen", "alias", "group"})
_CAMEL = re.compile(r"([a-z0-9])([A-Z])")
_NON_WORD = re.compile(r"[^0-9a-zA-Z]+")
_CAMPAIGN = (("source", "utm_source"), ("medium", "utm_medium"), ("name", "utm_campaign"))
_SNAKE_CACHE: dict[str, str] = {}


class SegmentMappingError(GrowthlakeError):
    """The Segment mapping file is invalid."""

    def __init__(self, source: str, problem: str) -> None:
        super().__init__(f"segment mapping {source}: {problem}. Fix the YAML (see "
                         "lake/contracts/segment_mapping.yaml for the shape) and rerun.")


def snake_case(name: str) -> str:
    """``"Order Completed"`` -> ``order_completed``, ``"trialStarted"`` -> ``trial_started``."""
    hit = _SNAKE_CACHE.get(name)
    if hit is None:
        hit = _NON_WORD.sub("_", _CAMEL.sub(r"\1_\2", name)).strip("_").lower()
        if len(_SNAKE_CACHE) < 10_000 and len(name) <= 256:  # names are few and short; a flood is not cached
            _SNAKE_CACHE[name] = hit
    return hit


@dataclass(frozen=True)
class SegmentMapping:
    """The parsed mapping file: names, traits, consent categories and per-file formats."""

    types: dict[str, str]
    events: dict[str, tuple[str, dict[str, str]]]  # track name -> (plan event, property renames)
    traits: Literal["declared", "all"] = "declared"
    analytics_ids: frozenset[str] = frozenset({"analytics"})
    marketing_ids: frozenset[str] = frozenset({"marketing"})
    when_missing: Literal["deny", "grant"] = "deny"
    file_formats: tuple[tuple[str, str], ...] = ()
    source: str = field(default="<memory>", compare=False)

    @classmethod
    def from_dict(cls, doc: Any, *, source: str = "<memory>") -> SegmentMapping:
        if not isinstance(doc, dict):
            raise SegmentMappingError(source, "is not a YAML mapping")
        types = {str(k): str(v) for k, v in (doc.get("types") or {}).items()}
        unknown = set(types) - SEGMENT_TYPES - {"track"}
        if unknown or "track" in types:
            raise SegmentMappingError(source, f"types lists {sorted(unknown | ({'track'} & set(types)))}; "
                                              f"only {sorted(SEGMENT_TYPES - {'track'})} map by type")
        events: dict[str, tuple[str, dict[str, str]]] = {}
        for name, target in (doc.get("events") or {}).items():
            if isinstance(target, str):
                events[str(name)] = (target, {})
            elif isinstance(target, dict) and isinstance(target.get("event"), str):
                renames = target.get("properties") or {}
                if not isinstance(renames, dict):
                    raise SegmentMappingError(source, f"events.{name}.properties must map old -> new names")
                events[str(name)] = (target["event"], {str(k): str(v) for k, v in renames.items()})
            else:
                raise SegmentMappingError(source, f"events.{name} must be an event name or {{event: …, properties: …}}")
        traits = doc.get("traits", "declared")
        if traits not in ("declared", "all"):
            raise SegmentMappingError(source, f"traits is {traits!r}; use declared or all")
        consent = doc.get("consent") or {}
        when_missing = consent.get("when_missing", "deny")
        if when_missing not in ("deny", "grant"):
            raise SegmentMappingError(source, f"consent.when_missing is {when_missing!r}; use deny or grant")
        formats = doc.get("file_formats") or {}
        if any(v not in ("segment", "canonical") for v in formats.values()):
            raise SegmentMappingError(source, "file_formats values must be segment or canonical")
        return cls(
            types=types, events=events, traits=traits,
            analytics_ids=frozenset(str(c).lower() for c in consent.get("analytics", ["analytics"])),
            marketing_ids=frozenset(str(c).lower() for c in consent.get("marketing", ["marketing"])),
            when_missing=when_missing, file_formats=tuple((str(k), str(v)) for k, v in formats.items()),
            source=source,
        )

    def targets(self) -> set[str]:
        """Every tracking-plan event name the mapping can produce explicitly."""
        return set(self.types.values()) | {t for t, _ in self.events.values()}


_LOADED: dict[tuple[str, int], SegmentMapping] = {}


def load_segment_mapping(path: str | os.PathLike[str] | None = None) -> SegmentMapping:
    """Load the mapping (default: ``$GROWTHLAKE_SEGMENT_MAPPING``, else the shipped file).

    Cached per path and modification time: ingestion asks once per landing partition.
    """
    p = Path(path or current_settings().segment_mapping or DEFAULT_MAPPING_PATH)
    try:
        key = (str(p), p.stat().st_mtime_ns)
    except FileNotFoundError:
        raise SegmentMappingError(str(p), "file not found") from None
    hit = _LOADED.get(key)
    if hit is None:
        try:
            doc = yaml.safe_load(p.read_text())
        except yaml.YAMLError as exc:
            raise SegmentMappingError(str(p), f"is not valid YAML ({exc})") from None
        hit = _LOADED[key] = SegmentMapping.from_dict(doc, source=str(p))
    return hit


def corrected_timestamp(original: Any, sent_at: Any, received_at: Any) -> str | None:
    """Segment's clock-skew correction: ``receivedAt - (sentAt - originalTimestamp)``.

    A device whose clock is off sends both times with the same offset; the difference is the real
    delay. Returns None when any of the three does not parse (RFC 3339 with an offset), or when the
    corrected time is not a representable date.
    """
    orig, sent, received = parse_timestamp(original), parse_timestamp(sent_at), parse_timestamp(received_at)
    if orig is None or sent is None or received is None:
        return None
    try:
        return _iso(received - (sent - orig))
    except OverflowError:  # the corrected time falls outside years 1-9999
        return None


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _grants(pairs, mapping: SegmentMapping) -> dict[str, bool | None]:
    """``(category id, granted)`` pairs -> each purpose granted when one of its ids is granted and
    none is refused; an id the pairs do not mention is not granted."""
    analytics = marketing = False
    analytics_refused = marketing_refused = False
    a_ids, m_ids = mapping.analytics_ids, mapping.marketing_ids
    for category, granted in pairs:
        t = type(category)
        if t is str:
            cid = category.lower()
        elif t is int or t is float:
            cid = str(category)
        else:  # an object or array names no category (and str() of a deep one would not return)
            continue
        if cid in a_ids:
            if granted is True:
                analytics = True
            else:
                analytics_refused = True
        if cid in m_ids:
            if granted is True:
                marketing = True
            else:
                marketing_refused = True
    return {"analytics": analytics and not analytics_refused, "marketing": marketing and not marketing_refused}


def _ids(value: Any) -> list:
    if type(value) is dict:  # older RudderStack SDKs: {id: name}
        return list(value)
    return value if type(value) is list else []


def map_consent(ctx: dict[str, Any], mapping: SegmentMapping) -> dict[str, bool | None]:
    """Canonical ``{"analytics": …, "marketing": …}`` from a message's context.

    ``None`` means "not stated" (the normalizer keeps only events whose analytics is ``True``).
    """
    consent = ctx.get("consent")
    if type(consent) is dict:
        if type(consent.get("analytics")) is bool:  # already canonical
            marketing = consent.get("marketing")
            return {"analytics": consent["analytics"], "marketing": marketing if type(marketing) is bool else None}
        prefs = consent.get("categoryPreferences")
        if type(prefs) is dict:  # Segment Consent Management: {categoryId: bool}
            return _grants(prefs.items(), mapping)
    managed = ctx.get("consentManagement")
    if type(managed) is dict:  # RudderStack: allowed / denied consent ids
        pairs = [(c, True) for c in _ids(managed.get("allowedConsentIds"))]
        pairs += [(c, False) for c in _ids(managed.get("deniedConsentIds"))]
        return _grants(pairs, mapping)
    return {"analytics": True if mapping.when_missing == "grant" else None, "marketing": None}


def _str_id(value: Any) -> Any:
    # Segment ids are strings; some SDKs send numbers (Segment itself stringifies them).
    t = type(value)
    return str(value) if t is int or t is float else value


class SegmentMapper:
    """Converts one parsed Segment message into a canonical event dict (picklable, per process).

    Args:
        mapping: names, traits and consent categories (:func:`load_segment_mapping`).
        plan: the tracking plan the result is validated against; it says which properties an
            event declares (page ``url`` -> ``path``, ``context.campaign`` -> ``utm_*``, traits).
    """

    def __init__(self, mapping: SegmentMapping, plan: TrackingPlan) -> None:
        self.mapping = mapping
        self._declared = {name: frozenset(spec.properties) for name, spec in plan.events.items()}
        self._types = dict(mapping.types)
        self._events = dict(mapping.events)

    def __call__(self, msg: dict[str, Any]) -> dict[str, Any]:
        ctx = msg.get("context")
        if type(ctx) is not dict:
            ctx = {}
        mtype = msg.get("type")
        anonymous_id = _str_id(msg.get("anonymousId"))
        props: Any
        if mtype == "track":
            raw = msg.get("event")
            if type(raw) is str:
                name, renames = self._events.get(raw) or (snake_case(raw), None)
            else:
                name, renames = None, None
            props = msg.get("properties")
            if props is None:
                props = {}
            if renames and type(props) is dict:
                props = {renames.get(k, k): v for k, v in props.items()}
        elif mtype == "page" or mtype == "screen":
            name = self._types.get(mtype)
            props = msg.get("properties")
            if props is None:
                props = {}
            if type(props) is dict:
                declared = self._declared.get(name, frozenset()) if name is not None else frozenset()
                self._page_fields(msg, props, declared)
        elif mtype == "identify" or mtype == "group":
            name = self._types.get(mtype)
            traits = msg.get("traits")
            if type(traits) is not dict:
                traits = ctx.get("traits")  # RudderStack's identify carries them in context.traits
            props = self._traits(traits, name)
            if mtype == "group":
                props["group_id"] = _str_id(msg.get("groupId"))
        elif mtype == "alias":
            # The alias links previousId (usually the anonymous id) to userId: in the canonical
            # model that is an event carrying both ids, which silver's identity map picks up.
            name = self._types.get(mtype)
            anonymous_id = _str_id(msg.get("previousId")) or anonymous_id
            props = {}
        else:
            name, props = None, msg.get("properties")
        if name is not None and type(props) is dict:
            campaign = ctx.get("campaign")
            if type(campaign) is dict:
                self._utm(campaign, props, self._declared.get(name, frozenset()))
            if name == "consent_updated":
                self._consent_properties(ctx, props)

        ts = msg.get("timestamp")
        if ts is None:
            ts = corrected_timestamp(msg.get("originalTimestamp"), msg.get("sentAt"), msg.get("receivedAt")) \
                or msg.get("originalTimestamp")
        session = ctx.get("sessionId")
        return {
            "event_id": _str_id(msg.get("messageId")),
            "event_name": name,
            "timestamp": ts,
            "received_at": msg.get("receivedAt"),
            "user_id": _str_id(msg.get("userId")),
            "anonymous_id": anonymous_id,
            "session_id": _str_id(session) if session is not None else None,
            "properties": props,
            "context": {
                "ip": ctx.get("ip"),
                "user_agent": ctx.get("userAgent"),
                "locale": ctx.get("locale"),
                "consent": map_consent(ctx, self.mapping),
            },
        }

    # -- helpers ------------------------------------------------------------------------------
    def _traits(self, traits: Any, name: str | None) -> dict[str, Any]:
        if type(traits) is not dict:
            return {}
        if self.mapping.traits == "all":
            return {snake_case(k): v for k, v in traits.items()}
        declared = self._declared.get(name, frozenset()) if name is not None else frozenset()
        out = {}
        for k, v in traits.items():
            key = snake_case(k)
            if key in declared:
                out[key] = v
        return out

    @staticmethod
    def _page_fields(msg: dict[str, Any], props: dict[str, Any], declared: frozenset[str]) -> None:
        for key in ("name", "category"):
            value = msg.get(key)
            if value is not None and key in declared and key not in props:
                props[key] = value
        if "path" in declared and props.get("path") is None and type(props.get("url")) is str:
            try:
                props["path"] = urlsplit(props["url"]).path or "/"
            except ValueError:
                pass

    @staticmethod
    def _utm(campaign: dict[str, Any], props: dict[str, Any], declared: frozenset[str]) -> None:
        for src, dst in _CAMPAIGN:
            value = campaign.get(src)
            if value is not None and dst in declared and dst not in props:
                props[dst] = value

    def _consent_properties(self, ctx: dict[str, Any], props: dict[str, Any]) -> None:
        # Segment's "Consent Preference Updated" carries the new choices in its context only.
        consent = map_consent(ctx, self.mapping)
        for purpose in ("analytics", "marketing"):
            if purpose not in props and consent[purpose] is not None:
                props[purpose] = consent[purpose]
