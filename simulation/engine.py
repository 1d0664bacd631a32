"""``simulate()``: draw the population, play every journey, deliver lines, write the truth."""

from __future__ import annotations

import os
import random
import time
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import orjson

from lake.errors import ConfigError

from .config import FAULT_KINDS, NO_CONSENT, SimulatorConfig
from .faults import FaultInjector
from .formats import MS_DAY, TimestampFormatter, hour_key, uuid4_str
from .journey import JourneyModel, UserOutcome
from .plan import load_plan_view
from .population import draw_population
from .truth import TruthWriter, write_manifest
from .writer import LandingWriter

__all__ = ["simulate", "SimulationSummary"]

_VALID_WHEN_FAULTED = frozenset({"duplicate", "late"})


@dataclass(frozen=True)
class SimulationSummary:
    """What one ``simulate`` call wrote (the manifest holds the per-hour detail)."""

    users: int
    days: int
    seed: int
    start: date
    lines_written: int
    events_written: int  # clean, distinct events: what a correct ingestion keeps in bronze
    files_written: int
    faults: dict[str, int]  # per collector fault kind
    no_analytics_consent: int  # lines of users without analytics consent (not a fault)
    elapsed_s: float
    landing_dir: Path | str  # a folder, or the object-store URI the files were uploaded to
    truth_dir: Path | str


def _check_args(root: str, users: int, days: int, seed: int, fault_rate: float, consent: float) -> None:
    if not isinstance(users, int) or users < 0:
        raise ConfigError("users", f"is {users!r}", "Pass a non-negative integer.")
    if not isinstance(days, int) or days < 1:
        raise ConfigError("days", f"is {days!r}", "Pass an integer >= 1.")
    if not isinstance(seed, int) or seed < 0:
        raise ConfigError("seed", f"is {seed!r}", "Pass a non-negative integer.")
    for name, value in (("fault_rate", fault_rate), ("analytics_consent_rate", consent)):
        if not 0.0 <= value <= 1.0:
            raise ConfigError(name, f"is {value!r}, outside [0, 1]", "Pass a probability.")


def simulate(root: str | os.PathLike[str], *, users: int, days: int, seed: int = 0,
             start: date | None = None, fault_rate: float = 0.02, analytics_consent_rate: float = 0.95,
             config: SimulatorConfig | None = None) -> SimulationSummary:
    """Simulate ``users`` visitors arriving over ``days`` days and land their events as JSONL.

    Writes ``<root>/landing/events/date=YYYY-MM-DD/hour=HH/sim-s<seed>-<start>-<n>.jsonl`` (folder =
    hour of ``received_at``, files published atomically) and the ground truth under
    ``<root>/simulator/truth/``. The same arguments always produce byte-identical files.

    Args:
        root: storage root (a local directory or ``s3://bucket/prefix``, e.g. ``$GROWTHLAKE_ROOT``; an object
            store gets the files simulated in a local temporary folder, uploaded one PUT each).
        users: visitors arriving over the window (~50 landed lines each with the defaults).
        days: window length; events happen in ``[start, start + days)`` UTC.
        seed: run seed.
        start: first day of the window (default: today, UTC, minus ``days``).
        fault_rate: probability that a consented user's event is hit by a collector fault.
        analytics_consent_rate: share of users granting analytics consent; the others' events
            are landed with ``consent.analytics: false``.
        config: model knobs (funnel rates, seasonality, prices, fault mix, file sizes).

    Returns:
        A ``SimulationSummary`` of what was written.

    Raises:
        ConfigError: an argument is out of range.
        TrackingPlanError: the tracking plan is missing or lacks an event the model emits.
    """
    t0 = time.perf_counter()
    root = os.fspath(root)
    _check_args(root, users, days, seed, fault_rate, analytics_consent_rate)
    if "://" in root:
        return _simulate_to_object_store(root, t0, users=users, days=days, seed=seed, start=start,
                                         fault_rate=fault_rate, analytics_consent_rate=analytics_consent_rate,
                                         config=config)
    cfg = config or SimulatorConfig()
    plan = load_plan_view(cfg.tracking_plan)
    if start is None:
        start = datetime.now(UTC).date() - timedelta(days=days)
    start_ms = (start - date(1970, 1, 1)).days * MS_DAY
    end_ms = start_ms + days * MS_DAY
    landing_dir = Path(root) / "landing" / "events"
    truth_dir = Path(root) / "simulator" / "truth"

    pop = draw_population(users, start, days, seed=seed, cfg=cfg, analytics_consent_rate=analytics_consent_rate)
    seed_key = f"{seed}:{start.isoformat()}:{users}:{days}"
    fmt = TimestampFormatter()
    journeys = JourneyModel(pop, cfg, seed_key=seed_key, end_ms=end_ms)
    injector = FaultInjector(plan, cfg, fmt, end_ms=end_ms)
    writer = LandingWriter(landing_dir, batch_name=f"sim-s{seed}-{start:%Y%m%d}",
                           max_lines_per_file=cfg.max_lines_per_file, max_buffered_bytes=cfg.max_buffered_bytes)
    truth = TruthWriter(truth_dir, pop, row_group=cfg.truth_row_group)
    try:
        clean, faults, no_consent, funnel = _deliver(journeys, injector, writer, truth, pop.analytics_consent.tolist(),
                                                     seed_key=seed_key, fault_rate=fault_rate, cfg=cfg,
                                                     fmt=fmt, end_ms=end_ms)
        writer.close()
        truth.close()
    except BaseException:
        writer.abort()
        truth.abort()
        raise

    lines = sum(writer.lines_by_hour.values())
    manifest = {
        "generator": "simulation",
        "args": {"users": users, "days": days, "seed": seed, "start": start.isoformat(),
                 "fault_rate": fault_rate, "analytics_consent_rate": analytics_consent_rate},
        "config": {k: (os.fspath(v) if isinstance(v, os.PathLike) else v) for k, v in asdict(cfg).items()},
        "tracking_plan_version": plan.version,
        "window": {"start": fmt(start_ms), "end": fmt(end_ms)},
        "lines_written": lines,
        "events_written": sum(clean.values()),
        "files_written": writer.files_written,
        "events_by_name": dict(sorted(clean.items())),
        "faults": faults,
        "no_analytics_consent": no_consent,
        "lines_by_hour": {hour_key(h): n for h, n in sorted(writer.lines_by_hour.items())},
        "faults_by_hour": {hour_key(h): {k: n for k, n in sorted(c.items()) if k != NO_CONSENT}
                           for h, c in sorted(writer.faults_by_hour.items()) if set(c) - {NO_CONSENT}},
        "no_analytics_consent_by_hour": {hour_key(h): c[NO_CONSENT] for h, c in sorted(writer.faults_by_hour.items())
                                         if NO_CONSENT in c},
        "users": funnel,
    }
    write_manifest(truth_dir, manifest)
    return SimulationSummary(
        users=users, days=days, seed=seed, start=start, lines_written=lines, events_written=sum(clean.values()),
        files_written=writer.files_written, faults=faults, no_analytics_consent=no_consent,
        elapsed_s=round(time.perf_counter() - t0, 3), landing_dir=landing_dir, truth_dir=truth_dir,
    )


def _simulate_to_object_store(root: str, t0: float, **kwargs) -> SimulationSummary:
    """Simulate into a local temporary folder, then upload it below ``root`` (``s3://bucket/prefix``).

    The truth goes first and the landing files last, each file one PUT: an object is visible only once
    all of it is written, so an ingestion running meanwhile sees whole batch files or none (as a
    collector's atomic rename guarantees locally). Same files, byte for byte, as a local run.
    """
    import tempfile

    import pyarrow.fs as pafs

    try:
        store, base = pafs.FileSystem.from_uri(root)
    except (OSError, ValueError) as exc:
        raise ConfigError("root", f"{root!r} cannot be opened as an object store ({exc})",
                          "Check the URI and the store's settings (AWS_* variables).") from None
    with tempfile.TemporaryDirectory(prefix="growthlake-sim-") as tmp:
        local = simulate(tmp, **kwargs)
        for part in ("simulator", "landing"):
            pafs.copy_files(f"{tmp}/{part}", f"{base}/{part}", source_filesystem=pafs.LocalFileSystem(),
                            destination_filesystem=store)
    return SimulationSummary(
        users=local.users, days=local.days, seed=local.seed, start=local.start, lines_written=local.lines_written,
        events_written=local.events_written, files_written=local.files_written, faults=local.faults,
        no_analytics_consent=local.no_analytics_consent, elapsed_s=round(time.perf_counter() - t0, 3),
        landing_dir=f"{root}/landing/events", truth_dir=f"{root}/simulator/truth")


def _deliver(journeys: JourneyModel, injector: FaultInjector, writer: LandingWriter, truth: TruthWriter,
             consent: list[bool], *, seed_key: str, fault_rate: float, cfg: SimulatorConfig,
             fmt: TimestampFormatter, end_ms: int) -> tuple[dict[str, int], dict[str, int], int, dict[str, int]]:
    """The hot loop: one journey at a time, each event turned into its landed line(s).

    Delivery (event ids, collector delays) and faults draw from two more per-user RNGs, so the
    fault rate never changes event ids or timestamps: a faultless run is the same stream, minus
    the faults.
    """
    clean: dict[str, int] = {}
    faults = dict.fromkeys(FAULT_KINDS, 0)
    funnel = dict.fromkeys(("arrived", "signed_up", "trial_started", "converted", "cancelled", "churned"), 0)
    no_consent = 0
    add, dumps, last = writer.add, orjson.dumps, end_ms - 1
    spread = cfg.max_delivery_delay_ms + 1
    for i in range(len(consent)):
        events, outcome = journeys.build(i)
        truth.add(outcome)
        _count_funnel(funnel, outcome)
        d = random.Random(f"growthlake-sim:{seed_key}:{i}:delivery")
        bits, rnd = d.getrandbits, d.random
        f = random.Random(f"growthlake-sim:{seed_key}:{i}:faults") if consent[i] and fault_rate > 0 else None
        tag = None if consent[i] else NO_CONSENT
        for ts, name, uid, anon, sid, props, ctx in events:
            rec = ts + int(rnd() * spread)
            if rec > last:
                rec = last
            ev = {"event_id": uuid4_str(bits), "event_name": name, "timestamp": fmt(ts), "received_at": fmt(rec),
                  "user_id": uid, "anonymous_id": anon, "session_id": sid, "properties": props, "context": ctx}
            if f is not None and f.random() < fault_rate:
                kind, lines = injector.apply(injector.choose(f), ev, ts, rec, f)
                for line in lines:
                    add(*line)
                faults[kind] += 1
                if kind in _VALID_WHEN_FAULTED:
                    clean[name] = clean.get(name, 0) + 1
                continue
            add(rec, dumps(ev), tag)
            if tag is None:
                clean[name] = clean.get(name, 0) + 1
        if tag is not None:
            no_consent += len(events)
    return clean, faults, no_consent, funnel


def _count_funnel(funnel: dict[str, int], o: UserOutcome) -> None:
    funnel["arrived"] += 1
    funnel["signed_up"] += o.signup_ms is not None
    funnel["trial_started"] += o.trial_ms is not None
    funnel["converted"] += o.converted_ms is not None
    funnel["cancelled"] += o.cancelled_ms is not None
    funnel["churned"] += o.churned_ms is not None
