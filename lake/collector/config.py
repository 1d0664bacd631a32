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
        max_inflight_bytes: decompressed request bytes held in memory — being received, or waiting
            to be durably landed; counted as they arrive, not as a client announces them. A request
            that would pass it gets 429 with Retry-After (the SDKs retry) instead of growing memory.
        max_unauthenticated_bytes: a request without an ``Authorization`` header may carry its key
            as ``writeKey`` in the body (analytics.js does); such a body is read only up to this
            size before the key is checked — a larger one gets 401 without being read.
        max_connections_per_ip: open connections one remote address may hold; one more is answered
            429 and closed at once (0: no cap — behind a reverse proxy every client has its address).
        header_timeout_s: a request's line and headers must arrive within this many seconds of the
            connection opening or of the request's first byte; otherwise the connection is closed
            (with 408).
        body_timeout_s: a request's whole body must arrive within this many seconds of its headers;
            otherwise 408 (the SDKs retry).
        idle_timeout_s: how long a keep-alive connection may wait, idle, for its next request.
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
    max_unauthenticated_bytes: int = 64 * 1024
    max_connections_per_ip: int = 128
    header_timeout_s: float = 10.0
    body_timeout_s: float = 60.0
    idle_timeout_s: float = 75.0
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
        if self.max_unauthenticated_bytes <= 0:
            raise ConfigError("collector limits", "max_unauthenticated_bytes must be positive",
                              "Fix --max-unauthenticated-kb.")
        if self.max_connections_per_ip < 0:
            raise ConfigError("collector limits", "max_connections_per_ip cannot be negative",
                              "Fix --max-connections-per-ip (0: no cap).")
        for name in ("header_timeout_s", "body_timeout_s", "idle_timeout_s"):
            if not getattr(self, name) > 0:
                raise ConfigError("collector timeouts", f"{name} must be a positive number of seconds",
                                  f"Fix --{name[:-2].replace('_', '-')}-s.")

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
