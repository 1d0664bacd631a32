"""Pseudonymization: keyed HMAC of IPs and plan-marked PII, with a regex safety net."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path
from typing import Any

from lake.paths import LakePaths
from lake.settings import current as current_settings

__all__ = ["PiiMasker", "pii_key_from_env", "mask_free_text", "looks_like_pii", "is_demo_profile"]

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_IPV4 = re.compile(r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?![\w.])")
_IPV6 = re.compile(
    r"(?<![\w:])(?:(?:[0-9A-Fa-f]{1,4}:){4,7}[0-9A-Fa-f]{1,4}"  # full form: at least 5 groups
    r"|(?:[0-9A-Fa-f]{1,4}:){1,6}(?::[0-9A-Fa-f]{1,4}){1,6}"  # compressed, with "::"
    r"|::(?:[0-9A-Fa-f]{1,4}:){0,6}[0-9A-Fa-f]{1,4})(?![\w:])"
)
_HASH_CHARS = 32  # 128 bits of HMAC-SHA256, hex


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


def looks_like_pii(value: str) -> bool:
    """True when a free-form string contains an email address or an IP address."""
    if "@" in value and _EMAIL.search(value):
        return True
    if "." in value and _IPV4.search(value):
        return True
    return ":" in value and bool(_IPV6.search(value))


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
        text = value if isinstance(value, str) else str(value)
        hit = self._cache.get(text)
        if hit is None:
            hit = hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()[:_HASH_CHARS]
            if len(self._cache) > 500_000:
                self._cache.clear()
            self._cache[text] = hit
        return hit

    def mask_text(self, text: str) -> str:
        """Mask every email and IP inside free text (used for lines that are not valid JSON)."""
        text = _EMAIL.sub(lambda m: "hmac:" + self.hash(m.group(0)), text)
        text = _IPV4.sub(lambda m: "hmac:" + self.hash(m.group(0)), text)
        return _IPV6.sub(lambda m: "hmac:" + self.hash(m.group(0)), text)

    def mask_properties(self, props: dict[str, Any], pii: frozenset[str], already: frozenset[str] = frozenset()) -> list[str]:
        """Mask in place: plan-marked PII, plus any string that looks like an email or IP.

        ``already`` names properties that were masked earlier (a replayed quarantine line), which
        must not be hashed twice. Returns the names of the properties masked now.
        """
        masked: list[str] = []
        for name, value in props.items():
            if name in already or value is None:
                continue
            if name in pii or (isinstance(value, str) and looks_like_pii(value)):
                props[name] = self.hash(value)
                masked.append(name)
            elif isinstance(value, (dict, list)):
                text = repr(value)
                if looks_like_pii(text):
                    props[name] = self.hash(text)
                    masked.append(name)
        return masked


def mask_free_text(masker: PiiMasker, text: str) -> str:
    return masker.mask_text(text)
