"""Every setting of growthlake, read from the environment in one place, at run time.

:class:`Settings` is the only reader of ``GROWTHLAKE_*`` (and the ``AWS_*`` of an object-store
root): the rest of the code asks it, never ``os.environ``. It is built when something runs —
:func:`current`, ``LakePaths.from_root``, the Dagster resource, a CLI verb — never at import, and
it refuses a malformed value with a :class:`~lake.errors.ConfigError` that names the variable, what
is wrong with it and how to fix it. The README's settings table lists the same variables.

Example::

    settings = Settings.from_env()            # or Settings.from_env({"GROWTHLAKE_ROOT": "/tmp/lake"})
    settings.lock_timeout_s                   # 600.0
    settings.require_pii_key()                # ConfigError unless a key (or the demo profile) is set
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

from lake.errors import ConfigError, PiiKeyMissing

__all__ = ["AWS_VARIABLES", "MIN_SECRET_CHARS", "Settings", "current", "resolve_root"]

DEFAULT_ROOT = "./data"
MIN_SECRET_CHARS = 16
# The object-store settings delta-rs, pyarrow and dbt read alike (a root on s3://…).
AWS_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION",
                 "AWS_ENDPOINT_URL", "AWS_ALLOW_HTTP", "AWS_EC2_METADATA_DISABLED")
Profile = Literal["demo", "test"]
NormalizerKind = Literal["columnar", "per_line"]


def resolve_root(value: str | os.PathLike[str]) -> str:
    """A storage root as the lake uses it: local folders absolute, object-store URIs unchanged."""
    text = os.fspath(value).strip()
    if "://" in text:
        return text.rstrip("/")
    return str(Path(text).expanduser().resolve())


def _local_path(value: str | None) -> str | None:
    return str(Path(value).expanduser().resolve()) if value else None


@dataclass(frozen=True, kw_only=True)
class Settings:
    """The settings of one growthlake process (README: "Settings"). Secrets are kept out of the repr.

    Attributes:
        root: ``GROWTHLAKE_ROOT``, resolved (absolute folder, or an ``s3://`` URI); default ``./data``.
        pii_key: ``GROWTHLAKE_PII_KEY``, the pseudonymization secret (>= 16 characters) or None.
        profile: ``GROWTHLAKE_PROFILE``: ``demo``/``test`` allow a generated, local-only PII key.
        tracking_plan: ``GROWTHLAKE_TRACKING_PLAN``, a tracking plan YAML to enforce instead of the shipped one.
        segment_mapping: ``GROWTHLAKE_SEGMENT_MAPPING``, a Segment/RudderStack mapping YAML.
        anomaly_config: ``GROWTHLAKE_ANOMALY_CONFIG``, a YAML overriding the anomaly gates' thresholds.
        local_dir: ``GROWTHLAKE_LOCAL_DIR``, the local folder of an object-store root.
        lock_dir: ``GROWTHLAKE_LOCK_DIR``, the folder of the writer-lock files.
        lock_timeout_s: ``GROWTHLAKE_LOCK_TIMEOUT``, seconds to wait for another writer.
        online_store: ``GROWTHLAKE_ONLINE_STORE``, the online feature store's SQLite file.
        alert_webhook: ``GROWTHLAKE_ALERT_WEBHOOK``, a URL that receives each new alert.
        write_keys: ``GROWTHLAKE_WRITE_KEYS``, the collector's accepted write keys (comma-separated).
        celery_broker: ``GROWTHLAKE_CELERY_BROKER``, broker and result backend of the Celery job.
        vacuum_retention_hours: ``GROWTHLAKE_VACUUM_RETENTION_HOURS``.
        silver_step_rows: ``GROWTHLAKE_SILVER_STEP_ROWS``, rows per step of a silver backlog.
        ingest_step_bytes: ``GROWTHLAKE_INGEST_STEP_BYTES``, landing bytes per pass of a ranged
            ingestion (consecutive hours; an hour larger than this is a pass of its own).
        parallel_min_bytes: ``GROWTHLAKE_PARALLEL_MIN_BYTES``, landing bytes of an hour from which
            ingestion normalizes on every core.
        max_line_bytes: ``GROWTHLAKE_MAX_LINE_BYTES``, longer landed lines are quarantined unread.
        normalizer: ``GROWTHLAKE_NORMALIZER``: ``columnar`` (default) normalizes landed lines column-wise,
            ``per_line`` with the per-line reference (same outcomes, slower; a fallback and a benchmark).
        actor: ``GROWTHLAKE_ACTOR``, who approves/rejects in the audit log (default: the login name).
        failpoint: ``GROWTHLAKE_FAILPOINT``, a named crash point of the kill -9 tests (never in production).
        storage_options: the ``AWS_*`` variables that are set (the object store of an ``s3://`` root).
        dagster_home: ``DAGSTER_HOME``, the Dagster instance the CLI records its runs in (None: an
            ephemeral instance).
    """

    root: str
    pii_key: str | None = field(default=None, repr=False)
    profile: Profile | None = None
    tracking_plan: str | None = None
    segment_mapping: str | None = None
    anomaly_config: str | None = None
    local_dir: str | None = None
    lock_dir: str | None = None
    lock_timeout_s: float = 600.0
    online_store: str | None = None
    alert_webhook: str | None = None
    write_keys: frozenset[str] = field(default=frozenset(), repr=False)
    celery_broker: str | None = None
    vacuum_retention_hours: int = 168
    silver_step_rows: int = 1_000_000
    ingest_step_bytes: int = 256 << 20
    parallel_min_bytes: int = 16 << 20
    max_line_bytes: int = 1 << 20
    normalizer: NormalizerKind = "columnar"
    actor: str | None = None
    failpoint: str | None = None
    storage_options: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    dagster_home: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read and check every setting from ``environ`` (default: the process environment, now).

        Args:
            environ: the variables to read (tests pass a dict).
            **overrides: field values that win over the environment (None leaves a field to it),
                e.g. ``root=`` from a ``--root`` option.

        Raises:
            ConfigError: a variable is malformed (the message names it and says how to fix it).
        """
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env.get(name)
            return value.strip() if value is not None and value.strip() else None

        normalizer = (get("GROWTHLAKE_NORMALIZER") or "columnar").lower()
        if normalizer not in ("columnar", "per_line"):
            raise ConfigError("GROWTHLAKE_NORMALIZER", f"is {normalizer!r}",
                              "Set it to columnar (or per_line), or unset it.")
        profile = get("GROWTHLAKE_PROFILE")
        if profile is not None:
            profile = profile.lower()
            if profile not in ("demo", "test"):
                raise ConfigError("GROWTHLAKE_PROFILE", f"is {profile!r}", "Set it to demo (or test), or unset it.")
        pii_key = env.get("GROWTHLAKE_PII_KEY") or None
        if pii_key is not None and len(pii_key) < MIN_SECRET_CHARS:
            raise ConfigError("GROWTHLAKE_PII_KEY", f"is shorter than {MIN_SECRET_CHARS} characters",
                              "Use a long random secret, e.g. `export GROWTHLAKE_PII_KEY=$(openssl rand -hex 32)`")
        write_keys = frozenset(k.strip() for k in (env.get("GROWTHLAKE_WRITE_KEYS") or "").split(",") if k.strip())
        short = sum(1 for k in write_keys if len(k) < MIN_SECRET_CHARS)
        if short:
            raise ConfigError("GROWTHLAKE_WRITE_KEYS", f"{short} key(s) shorter than {MIN_SECRET_CHARS} characters",
                              "Use long random secrets (a Segment write key has 32), e.g. `openssl rand -hex 16`")
        values: dict[str, Any] = {
            "root": resolve_root(get("GROWTHLAKE_ROOT") or DEFAULT_ROOT),
            "pii_key": pii_key,
            "profile": profile,
            "tracking_plan": get("GROWTHLAKE_TRACKING_PLAN"),
            "segment_mapping": get("GROWTHLAKE_SEGMENT_MAPPING"),
            "anomaly_config": get("GROWTHLAKE_ANOMALY_CONFIG"),
            "local_dir": _local_path(get("GROWTHLAKE_LOCAL_DIR")),
            "lock_dir": _local_path(get("GROWTHLAKE_LOCK_DIR")),
            "lock_timeout_s": _number(get("GROWTHLAKE_LOCK_TIMEOUT"), "GROWTHLAKE_LOCK_TIMEOUT", 600.0, float,
                                      minimum=0, unit="seconds"),
            "online_store": _local_path(get("GROWTHLAKE_ONLINE_STORE")),
            "alert_webhook": get("GROWTHLAKE_ALERT_WEBHOOK"),
            "write_keys": write_keys,
            "celery_broker": get("GROWTHLAKE_CELERY_BROKER"),
            "vacuum_retention_hours": _number(get("GROWTHLAKE_VACUUM_RETENTION_HOURS"),
                                              "GROWTHLAKE_VACUUM_RETENTION_HOURS", 168, int, minimum=0, unit="hours"),
            "silver_step_rows": _number(get("GROWTHLAKE_SILVER_STEP_ROWS"), "GROWTHLAKE_SILVER_STEP_ROWS",
                                        1_000_000, int, minimum=1, unit="rows"),
            "ingest_step_bytes": _number(get("GROWTHLAKE_INGEST_STEP_BYTES"), "GROWTHLAKE_INGEST_STEP_BYTES",
                                         256 << 20, int, minimum=1, unit="bytes"),
            "parallel_min_bytes": _number(get("GROWTHLAKE_PARALLEL_MIN_BYTES"), "GROWTHLAKE_PARALLEL_MIN_BYTES",
                                          16 << 20, int, minimum=0, unit="bytes"),
            "max_line_bytes": _number(get("GROWTHLAKE_MAX_LINE_BYTES"), "GROWTHLAKE_MAX_LINE_BYTES", 1 << 20, int,
                                      minimum=1024, unit="bytes"),
            "normalizer": normalizer,
            "actor": get("GROWTHLAKE_ACTOR"),
            "failpoint": get("GROWTHLAKE_FAILPOINT"),
            "storage_options": tuple((k, v) for k in AWS_VARIABLES if (v := env.get(k))),
            "dagster_home": _local_path(get("DAGSTER_HOME")),
        }
        chosen = {k: v for k, v in overrides.items() if v is not None}
        unknown = set(chosen) - {f.name for f in fields(cls)}
        if unknown:
            raise TypeError(f"unknown settings {sorted(unknown)}")
        if "root" in chosen:
            chosen["root"] = resolve_root(chosen["root"])
        return cls(**{**values, **chosen})

    def with_root(self, root: str | os.PathLike[str] | None) -> Settings:
        """The same settings for another storage root (None keeps this one)."""
        return self if root is None else replace(self, root=resolve_root(root))

    @property
    def is_demo(self) -> bool:
        """The demo (or test) profile: a generated, local-only PII key is allowed."""
        return self.profile is not None

    def require_pii_key(self) -> None:
        """Refuse to go on when pseudonymization would have no key (a demo profile generates one).

        Raises:
            PiiKeyMissing: no ``GROWTHLAKE_PII_KEY`` and not the demo profile.
            ConfigError: the demo profile on an object-store root (its generated key needs a local file).
        """
        if self.pii_key:
            return
        if not self.is_demo:
            raise PiiKeyMissing()
        if "://" in self.root:
            raise ConfigError("GROWTHLAKE_PII_KEY", "is required when the storage root is an object store",
                              "Export the secret (the demo profile's generated key lives in a local file)")

    def require_write_keys(self) -> frozenset[str]:
        """The collector's write keys.

        Raises:
            ConfigError: ``GROWTHLAKE_WRITE_KEYS`` is unset.
        """
        if not self.write_keys:
            raise ConfigError("GROWTHLAKE_WRITE_KEYS", "is not set, and the collector accepts events only from apps "
                              "that know a write key", "Export one or more comma-separated secrets, e.g. "
                              "`export GROWTHLAKE_WRITE_KEYS=$(openssl rand -hex 16)`, and give each app its key")
        return self.write_keys

    def check_root(self, *, must_exist: bool, writable: bool) -> None:
        """Refuse a storage root this process cannot use, before any work starts.

        Args:
            must_exist: the command reads a lake that must already be there.
            writable: the command writes below the root (it is created when missing).

        Raises:
            ConfigError: the root is not a folder, cannot be read or written, or (``must_exist``)
                does not exist; for an object-store root, ``GROWTHLAKE_LOCAL_DIR`` is unset.
        """
        if "://" in self.root:
            if not self.local_dir:
                raise ConfigError("GROWTHLAKE_LOCAL_DIR", f"it is unset and GROWTHLAKE_ROOT ({self.root}) is not a "
                                  "local folder: the DuckDB warehouse, dbt's files and the writer locks need one",
                                  "Set GROWTHLAKE_LOCAL_DIR to a local folder of this machine, "
                                  "e.g. /var/lib/growthlake")
            return
        root = Path(self.root)
        fix = "Point GROWTHLAKE_ROOT (or --root) at the lake's folder"
        if root.exists() and not root.is_dir():
            raise ConfigError("GROWTHLAKE_ROOT", f"{root} is a file, not a folder", fix)
        if not root.exists():
            if must_exist:
                raise ConfigError("GROWTHLAKE_ROOT", f"{root} does not exist: there is no lake there yet",
                                  f"{fix}, or create one with `growthlake simulate` (or `make demo`)")
            parent = next(p for p in root.parents if p.exists())
            if writable and not (parent.is_dir() and os.access(parent, os.W_OK | os.X_OK)):
                raise ConfigError("GROWTHLAKE_ROOT", f"{root} cannot be created ({parent} is not writable)", fix)
            return
        if not os.access(root, os.R_OK | os.X_OK):
            raise ConfigError("GROWTHLAKE_ROOT", f"{root} is not readable by this user",
                              f"{fix}, or fix its permissions")
        if writable and not os.access(root, os.W_OK):
            raise ConfigError("GROWTHLAKE_ROOT", f"{root} is not writable by this user",
                              f"{fix}, or fix its permissions")

    def storage_options_for(self, uri: str) -> dict[str, str] | None:
        """Object-store options (``AWS_*``) for ``uri``; None for a local path."""
        return dict(self.storage_options) if "://" in uri else None


def _number(raw: str | None, name: str, default: Any, kind: type, *, minimum: float, unit: str) -> Any:
    if raw is None:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(name, f"is {raw!r}, not a {'whole ' if kind is int else ''}number of {unit}",
                          f"Set a number (default {default}) or unset it") from None
    if value < minimum:
        raise ConfigError(name, f"is {raw}, below the minimum of {minimum} {unit}",
                          f"Set at least {minimum} (default {default}) or unset it")
    return value


def current(**overrides: Any) -> Settings:
    """The settings of this process as the environment says now (see :meth:`Settings.from_env`)."""
    return Settings.from_env(None, **overrides)
