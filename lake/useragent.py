"""Reduce a user-agent string to what analytics needs: browser family and device type."""

from __future__ import annotations

from functools import lru_cache

__all__ = ["parse_user_agent", "DEVICE_TYPES"]

DEVICE_TYPES = ("desktop", "mobile", "tablet", "bot", "other")

# Order matters: Edge and Opera and Samsung announce Chrome too; Chrome announces Safari.
_BROWSERS: tuple[tuple[str, str], ...] = (
    ("edg/", "Edge"),
    ("edga/", "Edge"),
    ("edgios/", "Edge"),
    ("opr/", "Opera"),
    ("samsungbrowser/", "Samsung Internet"),
    ("firefox/", "Firefox"),
    ("fxios/", "Firefox"),
    ("crios/", "Chrome"),
    ("chrome/", "Chrome"),
    ("chromium/", "Chrome"),
    ("safari/", "Safari"),
)
_BOTS = ("bot", "crawler", "spider", "slurp", "headless", "curl/", "python-requests", "wget/")


_CACHED_CHARS = 1024  # real user agents are shorter; longer strings are parsed uncached


def parse_user_agent(ua: object) -> tuple[str, str]:
    """Return ``(browser_family, device_type)``; unknown input gives ``("Other", "other")``.

    Any value is accepted: one that is not a non-empty string (a JSON array or object from a
    landed line, say) is unknown.
    """
    if type(ua) is not str or not ua:
        return "Other", "other"
    if len(ua) > _CACHED_CHARS:
        return _parse(ua)
    return _parse_cached(ua)


@lru_cache(maxsize=65_536)
def _parse_cached(ua: str) -> tuple[str, str]:
    return _parse(ua)


def _parse(ua: str) -> tuple[str, str]:
    low = ua.lower()
    if any(b in low for b in _BOTS):
        return "Bot", "bot"
    browser = next((fam for token, fam in _BROWSERS if token in low), "Other")
    if "ipad" in low or "tablet" in low or ("android" in low and "mobile" not in low):
        device = "tablet"
    elif "mobi" in low or "iphone" in low or "ipod" in low:
        device = "mobile"
    elif any(os_ in low for os_ in ("windows", "macintosh", "x11", "linux", "cros")):
        device = "desktop"
    else:
        device = "other"
    return browser, device
