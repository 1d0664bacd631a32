"""Fast, deterministic formatting: RFC 3339 timestamps from epoch ms, ids from a seeded RNG.

``datetime`` objects are never built per event: the ``YYYY-MM-DDTHH:`` prefix is cached per hour
and the rest comes from integer arithmetic and a table of ``MM:SS`` strings.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

__all__ = ["MS_HOUR", "MS_DAY", "TimestampFormatter", "uuid4_str", "short_hex", "hour_key", "hour_folder"]

MS_MINUTE = 60_000
MS_HOUR = 3_600_000
MS_DAY = 86_400_000

_MMSS: tuple[str, ...] = tuple(f"{m:02d}:{s:02d}" for m in range(60) for s in range(60))
_VARIANT = "89ab"


def _hour_start(hour_index: int) -> datetime:
    return datetime.fromtimestamp(hour_index * 3600, tz=UTC)


def hour_key(hour_index: int) -> str:
    """The manifest key of a landing hour: ``YYYY-MM-DD-HH:00``."""
    return _hour_start(hour_index).strftime("%Y-%m-%d-%H:00")


def hour_folder(hour_index: int) -> tuple[str, str]:
    """``("date=YYYY-MM-DD", "hour=HH")`` of an hour since the epoch."""
    dt = _hour_start(hour_index)
    return dt.strftime("date=%Y-%m-%d"), dt.strftime("hour=%H")


class TimestampFormatter:
    """``ms since epoch -> "2026-11-02T10:15:03.123Z"``, with a per-hour prefix cache."""

    __slots__ = ("_prefixes",)

    def __init__(self) -> None:
        self._prefixes: dict[int, str] = {}

    def __call__(self, ms: int) -> str:
        hour, rem = divmod(ms, MS_HOUR)
        prefix = self._prefixes.get(hour)
        if prefix is None:
            prefix = _hour_start(hour).strftime("%Y-%m-%dT%H:")
            self._prefixes[hour] = prefix
        sec, milli = divmod(rem, 1000)
        return f"{prefix}{_MMSS[sec]}.{milli:03d}Z"


def uuid4_str(getrandbits: Callable[[int], int]) -> str:
    """A version-4 UUID string drawn from a seeded ``random.Random().getrandbits``."""
    n = getrandbits(128)
    h = f"{n:032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[(n >> 60) & 3]}{h[17:20]}-{h[20:]}"


def short_hex(getrandbits: Callable[[int], int], prefix: str, bits: int = 64) -> str:
    """``prefix`` + ``bits/4`` hex digits, e.g. ``in_3f9c2e1a7b6d4c5e``."""
    return f"{prefix}{getrandbits(bits):0{bits // 4}x}"
