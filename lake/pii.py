"""Pseudonymization: keyed HMAC of IPs and plan-marked PII, with a linear-time scanner as safety net.

The scanner finds, in any free text, email addresses (also with the ``@`` percent-, double-percent-,
``\\u``- or HTML-encoded: ``ada%40example.org``), IPv4 addresses (also followed by a full stop or
other punctuation), IPv6 addresses and phone numbers (E.164 like ``+14155550123`` and the common
national forms ``(415) 555-0123``, ``415-555-0123``, ``020 7946 0958``, ``01 23 45 67 89``).

Every pattern runs in time linear in the length of the text, whatever the text: the regular
expressions either have bounded quantifiers only, or scan an unbounded run that can start only where
such a run starts (a look-behind refuses every other start) and never gives characters back
(possessive quantifiers) — so no input makes them backtrack. The rest is plain scanning of the
matches (``benchmarks/bench_pii.py`` prints the cost per MB of adversarial and benign text).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from bisect import bisect_left
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import polars as pl

from lake.paths import LakePaths
from lake.settings import current as current_settings

__all__ = [
    "MAX_MASK_DEPTH",
    "PiiMasker",
    "find_pii",
    "is_demo_profile",
    "looks_like_pii",
    "mask_free_text",
    "maybe_pii",
    "pii_key_from_env",
    "safe_prefix",
]

_HASH_CHARS = 32  # 128 bits of HMAC-SHA256, hex
_CACHE_MAX_CHARS = 256  # only short values are worth caching (and a cache of long ones would hold MBs)
MAX_MASK_DEPTH = 64  # PiiMasker.mask_json keeps this many levels of nesting; deeper ones are dropped

# -- the scanner ---------------------------------------------------------------------------------
# Encoded characters are decoded before matching (and the original substring is masked):
# %40, %2540 (double-encoded), \u0040, &#64; and &#x40; — and likewise for every other ASCII character.
_ESCAPE = re.compile(r"%(?:25)?([0-9A-Fa-f]{2})|\\u00([0-9A-Fa-f]{2})|&#(?:[xX]([0-9A-Fa-f]{2})|([0-9]{2,3}));")
# Emails: a run of local-part characters followed by one or more "@<run>" — every "@" that can join
# an address, with the whole run on either side. Starts only where such a run starts.
_AT_CHAIN = re.compile(r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]++(?:@[A-Za-z0-9._%+-]*+)++")
_DOMAIN = re.compile(r"[A-Za-z0-9.-]*+")
_TLD_REVERSED = re.compile(r"[A-Za-z]{2}\.(?=.)", re.S)  # ".xy" with something before it, in a reversed domain
_LETTERS = re.compile(r"[A-Za-z]*+")
# IPv4: a run of digits and dots that starts with a digit and is long enough to hold "1.2.3.4".
_DOTTED = re.compile(r"[0-9][0-9.]{6,}+")
# IPv6: two colons at most four hex digits apart, then the whole run of hex digits and colons around them.
_COLON_PAIR = re.compile(r":[0-9A-Fa-f]{0,4}:")
_HEX_COLON_RUN = re.compile(r"[0-9A-Fa-f:]*+")
_HEX_COLON = frozenset("0123456789ABCDEFabcdef:")
_IPV6_MAX = 39
# Phone numbers: first a run of phone characters long enough to hold one (a fast scan: it starts with
# a character class), then, inside it, bounded alternatives not glued to a word, a longer number or a
# dotted/dashed chain (UUID groups, versions, dates); digit counts are checked after the match.
_PHONE_RUN = re.compile(r"[+(0-9][0-9 ().+-]{7,}+")
_PHONE = re.compile(
    r"(?:(?<=\\[nrtbf])|(?<![A-Za-z0-9_+]))(?<![A-Za-z0-9][.-])"
    r"(?:"
    r"\+[1-9][0-9]{7,14}"  # E.164: +14155550123
    r"|\+[1-9][0-9]{0,2}[ .-]?(?:\([0-9]{1,4}\)|[0-9]{1,4})(?:[ .-][0-9]{1,4}){1,5}"  # +44 20 7946 0958
    r"|(?:1[ .-])?(?:\([0-9]{3}\) ?|[0-9]{3}[ .-])[0-9]{3}[ .-][0-9]{4}"  # (415) 555-0123, 415.555.0123
    r"|0[0-9]{2,4}[ -][0-9]{3,4}[ -]?[0-9]{3,4}"  # 020 7946 0958, 0161 496 0000, 07700 900123
    r"|0[1-9](?: [0-9]{2}){4}"  # 01 23 45 67 89
    r")"
    r"(?![A-Za-z0-9_])(?![.,-][0-9A-Za-z])"
)
_NEEDS_JSON_ESCAPE = re.compile(r'[\x00-\x1f"\\]')
# Something every match above needs (an "@" or an escape, digit.digit, :h:, +digit, three digits, or
# digit-space-digit): a text without any of these is clean, as one bounded search tells.
_TRIGGER = re.compile(r"[@%]|\\u|&#|[0-9]\.[0-9]|:[0-9A-Fa-f]{0,4}:|\+[1-9]|[0-9]{3}|[0-9] [0-9]")
_VERDICTS: dict[str, bool] = {}  # looks_like_pii of short strings (ids, paths, names repeat a lot)
_VERDICT_MAX_CHARS = 200
_VERDICT_MAX_ENTRIES = 100_000
_UUID = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")
_WORD = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
_JSON_ESCAPE_LETTERS = frozenset("nrtbf")
# Where a cut text may end without splitting a token (an email, a URL, an IP, a phone number).
_TOKEN_END = re.compile(r"[\s\"',;{}\[\]<>]")
_NUMBERISH = "0123456789 ()+.-"


def _word_at(text: str, i: int) -> bool:
    """Whether ``text[i]`` is an ASCII word character (a JSON escape like ``\\n`` is not)."""
    if i < 0 or i >= len(text):
        return False
    c = text[i]
    if c not in _WORD:
        return False
    return not (c in _JSON_ESCAPE_LETTERS and i > 0 and text[i - 1] == "\\")


def _decode(text: str) -> tuple[str, Callable[[int], int] | None]:
    """``text`` with encoded ASCII characters decoded, and a map of its positions back to ``text``."""
    if "%" not in text and "\\u" not in text and "&#" not in text:
        return text, None
    pieces: list[str] = []
    at: list[int] = []  # decoded index of each decoded escape
    extra: list[int] = [0]  # characters the escapes before it saved, cumulatively
    last = 0
    out_len = 0
    for m in _ESCAPE.finditer(text):
        code = int(next(g for g in m.groups() if g is not None), 10 if m.group(4) else 16)
        if code >= 0x80:
            continue
        pieces.append(text[last:m.start()])
        out_len += m.start() - last
        at.append(out_len)
        extra.append(extra[-1] + (m.end() - m.start() - 1))
        pieces.append(chr(code))
        out_len += 1
        last = m.end()
    if not at:
        return text, None
    pieces.append(text[last:])

    def original(pos: int) -> int:
        return pos + extra[bisect_left(at, pos)]

    return "".join(pieces), original


def _email_spans(text: str, out: list[tuple[int, int]]) -> None:
    for m in _AT_CHAIN.finditer(text):
        parts = m.group().split("@")
        start = m.start()
        for i in range(len(parts) - 1):
            local, after = parts[i], parts[i + 1]
            next_start = start + len(local) + 1
            if local and after:
                domain_match = _DOMAIN.match(after)
                assert domain_match is not None  # the pattern matches the empty string
                domain = domain_match.group()
                tld = _TLD_REVERSED.search(domain[::-1]) if len(domain) >= 4 else None
                if tld is not None:
                    dot = len(domain) - tld.end()  # the rightmost dot followed by two letters
                    letters = _LETTERS.match(domain, dot + 1)
                    assert letters is not None  # the pattern matches the empty string
                    out.append((start, next_start + letters.end()))
            start = next_start


def _ipv4_spans(text: str, out: list[tuple[int, int]]) -> None:
    # Dots before the run, and after the address (a full stop, an ellipsis), do not hide it.
    for m in _DOTTED.finditer(text):
        run = m.group()
        if run.count(".") < 3:
            continue
        core = run.rstrip(".")
        octets = core.split(".")
        if len(octets) != 4 or not all(o and len(o) <= 3 and int(o) <= 255 for o in octets):
            continue
        if _word_at(text, m.start() - 1) or _word_at(text, m.end()):
            continue
        out.append((m.start(), m.start() + len(core)))


def _is_ipv6(run: str) -> bool:
    if len(run) > 39 or ":::" in run:
        return False
    if "::" in run:
        if run.count("::") != 1:
            return False
        head, tail = run.split("::")
        groups = (head.split(":") if head else []) + (tail.split(":") if tail else [])
        return 1 <= len(groups) <= 7 and all(1 <= len(g) <= 4 for g in groups)
    groups = run.split(":")
    return 5 <= len(groups) <= 8 and all(1 <= len(g) <= 4 for g in groups)


def _ipv6_spans(text: str, out: list[tuple[int, int]]) -> None:
    pos = 0
    while (hit := _COLON_PAIR.search(text, pos)) is not None:
        start = hit.start()
        floor = max(0, start - _IPV6_MAX - 1)  # an address is at most 39 characters: look no further back
        while start > floor and text[start - 1] in _HEX_COLON:
            start -= 1
        run = _HEX_COLON_RUN.match(text, hit.start())
        assert run is not None  # the pattern matches the empty string
        end = run.end()
        pos = end  # the run is judged once, as a whole
        if start == floor and floor > 0 and text[floor - 1] in _HEX_COLON:
            continue  # longer than any address
        if _is_ipv6(text[start:end]) and not _word_at(text, start - 1) and not _word_at(text, end):
            out.append((start, end))


def _phone_spans(text: str, out: list[tuple[int, int]]) -> None:
    n = len(text)
    for run in _PHONE_RUN.finditer(text):
        # Look-behinds see the text before the run; the look-aheads need two characters after it.
        for m in _PHONE.finditer(text, run.start(), min(n, run.end() + 2)):
            found = m.group()
            digits = sum(c.isdigit() for c in found)
            if (8 <= digits <= 15) if found[0] == "+" else (10 <= digits <= 11):
                out.append(m.span())


def _scan(text: str) -> list[tuple[int, int]]:
    found: list[tuple[int, int]] = []
    if "@" in text:
        _email_spans(text, found)
    if "." in text:
        _ipv4_spans(text, found)
    if ":" in text:
        _ipv6_spans(text, found)
    _phone_spans(text, found)
    return found


def find_pii(text: str) -> list[tuple[int, int]]:
    """Where ``text`` holds an email, an IP address or a phone number: sorted, merged ``(start, end)``.

    Linear in ``len(text)`` for every input. The text is scanned as written and, when it holds encoded
    characters (``%40``, ``%2540``, ``\\u0040``, ``&#64;``), once more decoded; the spans are positions
    in ``text`` itself, so they cover the encoded form.
    """
    if _TRIGGER.search(text) is None or (len(text) == 36 and _UUID.fullmatch(text)):
        return []
    found = _scan(text)
    decoded, original = _decode(text)
    if original is not None:  # the text as written, and as decoded (each can show what the other hides)
        found += [(original(s), original(e)) for s, e in _scan(decoded)]
    if not found:
        return found
    found.sort()
    merged = [found[0]]
    for s, e in found[1:]:
        last_s, last_e = merged[-1]
        if s <= last_e:  # overlapping or touching: one span (an address glued to the next one)
            merged[-1] = (last_s, max(last_e, e))
        else:
            merged.append((s, e))
    return merged


def looks_like_pii(value: str) -> bool:
    """True when a string contains an email, an IP address or a phone number.

    The string is judged as it is and as it is stored in JSON text (escaped), so that what the
    bronze gates scan (JSON) never shows an address this function missed.
    """
    short = len(value) <= _VERDICT_MAX_CHARS
    if short:
        hit = _VERDICTS.get(value)
        if hit is not None:
            return hit
    verdict = bool(find_pii(value)) or (
        _NEEDS_JSON_ESCAPE.search(value) is not None and bool(find_pii(orjson.dumps(value).decode())))
    if short:
        if len(_VERDICTS) >= _VERDICT_MAX_ENTRIES:
            _VERDICTS.clear()
        _VERDICTS[value] = verdict
    return verdict


def maybe_pii(values: pl.Expr) -> pl.Expr:
    """A column-wise test that is false only where :func:`looks_like_pii` is false.

    It asks what :func:`find_pii` asks first — the trigger (an ``@``, an escape, digit.digit, ...)
    and the UUID exception, the same regular expressions run by polars — and whether the value has
    a character that JSON escapes (:func:`looks_like_pii` then also scans the escaped form). Where it
    is true, ask :func:`looks_like_pii` (per distinct value): the verdicts are then those of the
    scanner by construction.
    """
    trigger = values.str.contains(_TRIGGER.pattern)
    uuid = (values.str.len_chars() == 36) & values.str.contains(f"^(?:{_UUID.pattern})$")
    return (trigger & ~uuid) | values.str.contains(_NEEDS_JSON_ESCAPE.pattern)


def safe_prefix(text: str, limit: int, *, truncated: bool = False) -> str:
    """``text`` cut to at most ``limit`` characters without splitting an email, URL, IP or phone number.

    A cut text ends at the last token boundary (space, quote, comma, bracket) before the cut, and
    without a trailing run of digits and phone punctuation — so no half address is left that the
    scanner would no longer recognize.

    Args:
        text: the text to shorten.
        limit: at most this many characters are kept.
        truncated: ``text`` is itself a cut of a longer text: its end is trimmed even when it is
            short enough already.
    """
    if len(text) <= limit and not truncated:
        return text
    cut = text[:limit]
    ends = [m.start() for m in _TOKEN_END.finditer(cut)]
    cut = cut[: ends[-1] + 1] if ends else ""
    return cut.rstrip(_NUMBERISH)


def is_demo_profile() -> bool:
    """Whether ``GROWTHLAKE_PROFILE`` is ``demo`` (or ``test``): a generated PII key is allowed."""
    return current_settings().is_demo


def pii_key_from_env(paths: LakePaths | None = None) -> bytes:
    """The HMAC key: ``GROWTHLAKE_PII_KEY`` of the lake's settings (``paths.settings``).

    Without one, ingestion refuses to run — unless ``GROWTHLAKE_PROFILE=demo`` (or ``test``),
    where a random key is generated once and kept at ``$ROOT/_demo/pii_key`` so that hashes stay
    stable for that demo lake. The demo key is never a constant in the code.

    Raises:
        PiiKeyMissing: no key and not the demo profile.
        ConfigError: the demo profile on an object-store root.
    """
    paths = paths or LakePaths.from_root()
    settings = paths.settings
    settings.require_pii_key()
    if settings.pii_key:
        return settings.pii_key.encode()
    keyfile = Path(paths.demo_pii_key)
    if not keyfile.exists():
        keyfile.parent.mkdir(parents=True, exist_ok=True)
        tmp = keyfile.with_suffix(".tmp")
        tmp.write_text(secrets.token_hex(32))
        os.chmod(tmp, 0o600)
        os.replace(tmp, keyfile)
    return keyfile.read_text().strip().encode()


def _nested_has_pii(value: Any) -> bool:
    """Whether any key or string inside a JSON container looks like PII (iterative: any depth)."""
    stack = [value]
    while stack:
        node = stack.pop()
        items = node.items() if type(node) is dict else ((None, v) for v in node)
        for key, item in items:
            if key is not None and looks_like_pii(key):
                return True
            t = type(item)
            if t is str:
                if looks_like_pii(item):
                    return True
            elif t is dict or t is list:
                stack.append(item)
    return False


class _Token(str):
    """Text the iterative serializer below emits as it is (a plain ``str`` on its stack is a value)."""


def _stable_text(value: Any) -> str:
    """A deterministic text of a JSON value, whatever its depth (the input of its hash)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:  # nested deeper than orjson writes: the same JSON, written iteratively
        parts: list[str] = []
        stack: list[Any] = [value]
        while stack:
            node = stack.pop()
            t = type(node)
            if t is _Token:
                parts.append(node)
            elif t is dict:
                parts.append("{")
                stack.append(_Token("}"))
                for i, k in enumerate(sorted(node, reverse=True)):
                    stack.append(node[k])
                    stack.append(_Token(("" if i == len(node) - 1 else ",") + orjson.dumps(k).decode() + ":"))
            elif t is list:
                parts.append("[")
                stack.append(_Token("]"))
                for i, item in enumerate(reversed(node)):
                    stack.append(item)
                    if i != len(node) - 1:
                        stack.append(_Token(","))
            else:
                parts.append(orjson.dumps(node).decode())
        return "".join(parts)


class PiiMasker:
    """Replaces personal data by a keyed HMAC (stable per key, not reversible without it)."""

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._cache: dict[str, str] = {}

    @property
    def key(self) -> bytes:
        """The secret (handed to worker processes; never logged or stored)."""
        return self._key

    def hash(self, value: Any) -> str:
        """The keyed hash (32 hex characters) of a value.

        A number or boolean is hashed as its ``str``, an object or array as its JSON text (keys
        sorted; any depth).
        """
        t = type(value)
        text = value if t is str else _stable_text(value) if t is dict or t is list else str(value)
        hit = self._cache.get(text)
        if hit is None:
            hit = hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()[:_HASH_CHARS]
            if len(text) <= _CACHE_MAX_CHARS:
                if len(self._cache) > 500_000:
                    self._cache.clear()
                self._cache[text] = hit
        return hit

    def mask_text(self, text: str) -> str:
        """Replace every email, IP address and phone number inside free text by ``hmac:<hash>``.

        Linear in the length of the text (see :func:`find_pii`).
        """
        spans = find_pii(text)
        if not spans:
            return text
        out = []
        last = 0
        for s, e in spans:
            out.append(text[last:s])
            out.append("hmac:" + self.hash(text[s:e]))
            last = e
        out.append(text[last:])
        return "".join(out)

    def mask_string(self, value: str) -> str:
        """:meth:`mask_text`, and the whole value hashed when its JSON-escaped form still shows PII."""
        if not looks_like_pii(value):  # the common case, remembered for short strings
            return value
        masked = self.mask_text(value)
        if _NEEDS_JSON_ESCAPE.search(masked) is not None and find_pii(orjson.dumps(masked).decode()):
            return "hmac:" + self.hash(value)
        return masked

    def mask_json(self, value: Any, *, max_depth: int = MAX_MASK_DEPTH) -> Any:
        """A copy of a parsed JSON value with PII masked in every string and key (:meth:`mask_string`).

        Iterative, so any nesting is handled.

        Args:
            value: any value ``orjson.loads`` returns.
            max_depth: containers nested deeper are replaced by a short note (the landed line keeps
                them), so that the result can always be serialized (orjson writes 254 levels).
        """
        t = type(value)
        if t is str:
            return self.mask_string(value)
        if t is not dict and t is not list:
            return value
        root: Any = {} if t is dict else []
        stack = [(value, root, 1)]
        while stack:
            src, dst, depth = stack.pop()
            items = src.items() if type(src) is dict else ((None, v) for v in src)
            for key, item in items:
                ti = type(item)
                if ti is str:
                    new: Any = self.mask_string(item)
                elif ti is dict or ti is list:
                    if depth >= max_depth:
                        new = f"<{ti.__name__} nested deeper than {max_depth} levels: not kept>"
                    else:
                        new = {} if ti is dict else []
                        stack.append((item, new, depth + 1))
                else:
                    new = item
                if key is None:
                    dst.append(new)
                else:
                    dst[self.mask_string(key)] = new
        return root

    def mask_properties(self, props: dict[str, Any], pii: frozenset[str],
                        already: frozenset[str] = frozenset()) -> list[str]:
        """Mask in place: plan-marked PII, plus any string that looks like an email, IP or phone number.

        A nested value (object or array) holding such a string anywhere is hashed whole.
        ``already`` names properties that were masked earlier (a replayed quarantine line), which
        must not be hashed twice. Returns the names of the properties masked now.
        """
        masked: list[str] = []
        for name, value in props.items():
            if name in already or value is None:
                continue
            t = type(value)
            nested = t is dict or t is list
            if name in pii or (t is str and looks_like_pii(value)):
                props[name] = self.hash(value)
                masked.append(name)
            elif nested and _nested_has_pii(value):
                props[name] = self.hash(value)
                masked.append(name)
        return masked


def mask_free_text(masker: PiiMasker, text: str) -> str:
    """:meth:`PiiMasker.mask_text` as a function."""
    return masker.mask_text(text)
