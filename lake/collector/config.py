"""The collector's settings: write keys from the environment, limits, address."""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field, replace

from lake.errors import ConfigError
from lake.settings import Settings
from lake.settings import current as current_settings

__all__ = ["WRITE_KEYS_ENV", "CollectorConfig", "write_keys_from_env"]

WRITE_KEYS_ENV = "GROWTHLAKE_WRITE_KEYS"


def write_keys_from_env(value: str | None = None) -> frozenset[str]:
    """The accepted write keys: ``GROWTHLAKE_WRITE_KEYS`` of the settings (or ``value``), comma-separated.

    Raises:
        ConfigError: none is set, or one is too short to be a secret.
    """
    settings = Settings.from_env({WRITE_KEYS_ENV: value}) if value is not None else current_settings()
    return settings.require_write_keys()


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
