"""The collector's settings: write keys from the environment, limits, address."""

from __future__ import annotations

import hmac
import os
from dataclasses import dataclass, field, replace

from lake.errors import ConfigError

__all__ = ["WRITE_KEYS_ENV", "CollectorConfig", "write_keys_from_env"]

WRITE_KEYS_ENV = "GROWTHLAKE_WRITE_KEYS"
_MIN_KEY_CHARS = 16


def write_keys_from_env(value: str | None = None) -> frozenset[str]:
    """The accepted write keys: ``$GROWTHLAKE_WRITE_KEYS``, comma-separated (one per source/app).

    Raises:
        ConfigError: none is set, or one is too short to be a secret.
    """
    raw = os.environ.get(WRITE_KEYS_ENV, "") if value is None else value
    keys = frozenset(k.strip() for k in raw.split(",") if k.strip())
    if not keys:
        raise ConfigError(WRITE_KEYS_ENV, "is not set, and the collector accepts events only from apps that "
                          "know a write key", "Export one or more comma-separated secrets, e.g. "
                          "`export GROWTHLAKE_WRITE_KEYS=$(openssl rand -hex 16)`, and give each app its key.")
    short = sum(1 for k in keys if len(k) < _MIN_KEY_CHARS)
    if short:
        raise ConfigError(WRITE_KEYS_ENV, f"{short} key(s) shorter than {_MIN_KEY_CHARS} characters",
                          "Use long random secrets (a Segment write key has 32).")
    return keys


@dataclass(frozen=True)
class CollectorConfig:
    """How the collector listens, whom it accepts, and how much it holds.

    Attributes:
        write_keys: accepted write keys (never printed: excluded from the repr).
        host, port: the address to bind (loopback by default; put a TLS proxy in front to expose it).
        max_message_bytes: one message as the SDK sent it (Segment's limit: 32 KB).
        max_batch_bytes: one request body, decompressed (Segment's limit: 500 KB per batch).
        max_inflight_bytes: request bytes admitted but not yet durably landed; beyond it new
            requests get 429 with Retry-After instead of growing memory.
        linger_ms: how long a commit waits for more requests before writing one file per hour
            (fewer, larger landing files; an acknowledgement waits at most this plus the fsync).
        retry_after_s: the Retry-After given with 429 / 503.
    """

    write_keys: frozenset[str] = field(repr=False)
    host: str = "127.0.0.1"
    port: int = 8088
    max_message_bytes: int = 32 * 1024
    max_batch_bytes: int = 500 * 1024
    max_inflight_bytes: int = 64 << 20
    linger_ms: float = 50.0
    retry_after_s: int = 1

    def __post_init__(self) -> None:
        if not self.write_keys:
            raise ConfigError(WRITE_KEYS_ENV, "no write key given", "Give the collector at least one write key.")
        if self.max_message_bytes <= 0 or self.max_batch_bytes < self.max_message_bytes:
            raise ConfigError("collector limits", "need 0 < max_message_bytes <= max_batch_bytes",
                              "Fix --max-message-kb / --max-batch-kb.")
        if self.max_inflight_bytes < self.max_batch_bytes:
            raise ConfigError("collector limits", "max_inflight_bytes is smaller than one batch",
                              "Raise --max-inflight-mb.")

    @classmethod
    def from_env(cls, **overrides) -> CollectorConfig:
        """Keys from ``$GROWTHLAKE_WRITE_KEYS``; every other field from ``overrides`` or its default."""
        return replace(cls(write_keys=write_keys_from_env()), **overrides)

    def accepts(self, key: str) -> bool:
        """Whether ``key`` is one of the write keys (constant-time per key)."""
        given = key.encode()
        found = False
        for k in self.write_keys:
            found |= hmac.compare_digest(given, k.encode())
        return found
