"""A day-stepped, closed-loop product simulator with known true effects.

Unlike :func:`simulation.simulate` (whole journeys at once), this model advances one UTC
day per :meth:`ClosedLoopSimulator.step`, and each day reads the actuation outbox of the growth
loops — a GrowthBook features document and the sent messages — so decisions taken for day ``d-1``
change what users do from day ``d``. The effects of every intervention are configured
(:class:`ClosedLoopConfig`, :meth:`ClosedLoopConfig.true_effects`; ``simulation.closed_loop_config``) and
the realized truth is recorded per user and day (``simulation.closed_loop_truth``), so loop lifts and
experiment estimates can be checked against it. This module is the day-stepped engine; the flags
document and the outbox it reads each morning are ``simulation.closed_loop_inputs``.

Model, per day ``d`` (in this order). The product's behaviour — visitors and their devices, return
visits, sign-up, onboarding, trial, plan, conversion, cancellation, consent changes, activation,
dormancy, activity, sessions, failed renewals, lifecycle email and email opens — is the event
simulator's: the same rules (:mod:`simulation.behaviour`) with the same parameters
(:class:`~simulation.config.ProductModel`). What only this model adds is the interventions.

1. messages sent (``sent_at``, else ``created_at``) before ``d`` 00:00 UTC and not delivered yet are
   delivered: users with marketing consent open / click them (``email_opened`` / ``email_clicked``,
   ``campaign`` = template); a message to a user without marketing consent is ignored and counted
   as a consent violation. ``trial_nudge`` to a user in trial adds ``trial_nudge_lift`` to their
   conversion probability; ``retention_offer`` to a paying user multiplies their daily churn hazard
   by ``retention_offer_churn_multiplier`` for ``retention_offer_days`` days;
2. paying users churn (``subscription_cancelled``) with the daily hazard of ``p_cancel_monthly``,
   the others renew on their billing day (``payment_succeeded``; a failed renewal,
   ``payment_failed``, is retried and succeeds three days later);
3. early converters (``p_convert · early_conversion_share`` of the trials, on a day within the trial)
   pay without meeting the paywall; trials ending today show the paywall (flag ``paywall_variant``,
   evaluated with the GrowthBook SDK); a user converts with ``p = min(1, (p_late + lift·nudged) ·
   conversion_multiplier[variant])``, ``p_late`` the conversion probability left at the end of the
   trial, and pays ``price · price_factor[variant]`` (``subscription_started`` + ``payment_succeeded``);
4. signed-up users go dormant with the dormancy hazard, the others are active with ``p_active_daily``
   raised by completed onboarding and the status (activation) and lowered on weekends; their sessions
   (on one of their 1–3 devices; a new one logs in with ``user_logged_in``) emit ``page_viewed`` /
   ``feature_used``; a trial that is due starts in the first session after (``trial_started``) and a
   due consent change flips marketing consent (``consent_updated``);
5. ``arrivals_per_day`` anonymous visitors arrive (``weekend_factor`` times as many on weekends) and
   earlier visitors come back (anonymous return visits); a visitor signs up (``p_signup``) on the first
   visit or, for ``1 - first_visit_signup_share`` of them, later (a sign-up due after 22:00 UTC happens
   at 22:00, so its session fits in the day); ``user_signed_up`` links ``anonymous_id`` and
   ``user_id``; they get the onboarding variant of flag ``onboarding_variant`` and complete its steps
   in order, each with ``p_onboarding_step`` raised by the variant's lift
   (``onboarding_step_completed``); some will start a trial (``p_trial``, at sign-up or 0.3–4 days later);
6. the product's lifecycle email (welcome, onboarding nudge, trial reminder, win-back, newsletter)
   is sent and opened / clicked like any email.

Every outcome draw is a keyed uniform of (seed, purpose, user, day), not a position in a shared
stream: a user's outcomes do not depend on what happens to other users, so two runs that differ
only in their interventions are paired user by user (common random numbers). Cosmetic details
(timestamps, event ids, page choices) come from a per-day generator.

Layout below ``root``: landing files ``landing/events/date=…/hour=…/closed-loop-s<seed>-<YYYYMMDD>-<n>.jsonl``
(written with :class:`LandingWriter`, published atomically); state and truth under
``simulator/closed_loop/``: ``cursor.json`` (the commit point of a step), ``state/users-<next day>.parquet``,
``state/delivered-<next day>.parquet``, ``state/visitors-<next day>.parquet`` (visitors who may still
come back or sign up), ``truth/day=YYYY-MM-DD.parquet`` (one row per signed-up user),
``truth/messages/day=YYYY-MM-DD.parquet`` (one row per delivered message) and
``truth/day=YYYY-MM-DD.json`` (day counts). No raw email or IP is stored outside the landing zone:
both are re-derived from the seed when needed.
"""

from __future__ import annotations

import hashlib
import math
import os
import random
import time
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import polars as pl

from lake.errors import ConfigError

from .behaviour import (
    FIRST_DEVICE_DESKTOP_SHARE,
    FIRST_SESSION_ACTIONS_MEAN,
    MARKETING_CAMPAIGNS,
    PAYMENT_RETRY_DAYS,
    PRIMARY_DEVICE_SHARE,
    RETURN_VISIT_WINDOW_DAYS,
    SESSION_GAP_MS,
    actions_mean,
    arrival_factor,
    cancel_daily_hazard,
    consent_change_delay_ms,
    dormancy_hazard,
    engagement_from_uniform,
    extra_sessions_mean,
    late_conversion_probability,
    lifecycle_may_send,
    lifecycle_sends,
    open_delay_ms,
    open_probability,
    p_active_today,
    p_cancel_monthly,
    p_convert,
    p_onboarding_step,
    p_signup,
    p_team,
    p_trial,
    price_sensitivity_from_uniform,
    return_visit_ms,
    return_visits_mean,
    signup_delay_ms,
    trial_delay_ms,
    visit_pages_mean,
    )
from .catalog import (
    APP_PAGES,
    CANCEL_REASONS,
    CHANNELS,
    EMAIL_DOMAINS,
    EMAIL_LINKS,
    FEATURE_WEIGHTS,
    FEATURES,
    FIRST_NAMES,
    LOCALE_WEIGHTS,
    LOCALES,
    MARKETING_PAGES,
    ONBOARDING_STEPS,
    PAGE_TITLES,
    PAYMENT_FAILURE_REASONS,
    SIGNUP_METHOD_WEIGHTS,
    SIGNUP_METHODS,
    USER_AGENTS,
)
from .closed_loop_config import ClosedLoopConfig, PaywallEffect, retired_parameters
from .closed_loop_inputs import Flags, Message, messages_due
from .closed_loop_truth import MESSAGE_SCHEMA, DayTruth, closed_loop_dir, read_message_truth, read_truth, truth_summary
from .formats import MS_DAY, MS_HOUR, MS_MINUTE, TimestampFormatter, short_hex, uuid4_str
from .writer import LandingWriter

__all__ = [
    "ClosedLoopConfig",
    "ClosedLoopSimulator",
    "DayTruth",
    "PaywallEffect",
    "closed_loop_dir",
    "read_message_truth",
    "read_truth",
    "truth_summary",
]

_EPOCH = date(1970, 1, 1)
_OCTETS = tuple(o for o in range(11, 224) if o not in (100, 127, 169, 172, 192, 198))
_EMAIL_LINKS = {
    "trial_nudge": ("https://app.growthlake.example/app/billing", "https://growthlake.example/pricing"),
    "retention_offer": ("https://app.growthlake.example/app/billing", "https://app.growthlake.example/app"),
}
_DEFAULT_LINKS = ("https://app.growthlake.example/app", "https://growthlake.example/features")
_MAX_GAP_MS = 300_000
_DESKTOP = np.array([j for j, (_, kind) in enumerate(USER_AGENTS) if kind == "desktop"], dtype=np.int16)
_HANDHELD = np.array([j for j, (_, kind) in enumerate(USER_AGENTS) if kind != "desktop"], dtype=np.int16)
_LAST_SIGNUP_HOUR = 22  # a sign-up's session, onboarding and first steps must fit in its day


# -- keyed randomness ---------------------------------------------------------------------------
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S11, _S27, _S30, _S31 = (np.uint64(s) for s in (11, 27, 30, 31))


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer, elementwise on uint64 (wrapping arithmetic)."""
    x = (x ^ (x >> _S30)) * _M1
    x = (x ^ (x >> _S27)) * _M2
    return x ^ (x >> _S31)


class _Keyed:
    """Counter-based random numbers: a pure function of (seed, purpose…, index)."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def _key(self, parts: tuple) -> np.uint64:
        digest = hashlib.blake2b(repr((self.seed, *parts)).encode(), digest_size=8).digest()
        return np.uint64(int.from_bytes(digest, "little"))

    def bits(self, idx: np.ndarray, *parts: Any) -> np.ndarray:
        k = self._key(parts)
        with np.errstate(over="ignore"):
            return _mix(_mix(idx.astype(np.uint64) * _GOLDEN + k) ^ k)

    def uniform(self, idx: np.ndarray, *parts: Any) -> np.ndarray:
        return (self.bits(idx, *parts) >> _S11).astype(np.float64) * (1.0 / 9007199254740992.0)

    def scalar(self, *parts: Any) -> float:
        digest = hashlib.blake2b(repr((self.seed, *parts)).encode(), digest_size=8).digest()
        return (int.from_bytes(digest, "little") >> 11) / 9007199254740992.0


def _ip(b: int) -> str:
    """A plausible public IPv4 address from 64 random bits (never stored: re-derived from the seed)."""
    return f"{_OCTETS[b % len(_OCTETS)]}.{(b >> 16) & 255}.{(b >> 24) & 255}.{1 + (b >> 32) % 254}"


def _day_number(day: date) -> int:
    if isinstance(day, datetime) or not isinstance(day, date):
        raise ConfigError("day", f"{day!r} is not a date", "Pass a datetime.date.")
    return (day - _EPOCH).days


def _date(dn: int) -> date:
    return date.fromordinal(_EPOCH.toordinal() + dn)


def _poisson_from_uniform(u: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Poisson(``mean``) counts by inverting the CDF at ``u`` (keyed draws, elementwise)."""
    n, k = np.zeros(len(u), dtype=np.int64), 0
    p = np.exp(-np.asarray(mean, dtype=np.float64))
    cdf = p.copy()
    while k < 100:
        more = u >= cdf
        if not more.any():
            break
        n += more
        k += 1
        p = p * mean / k
        cdf = cdf + p
    return n


def _anonymous_id(k: _Keyed, idx: int, d: int) -> str:
    """The anonymous id of visitor ``idx``'s device ``d`` (re-derived from the seed, never stored)."""
    key = np.array([idx], dtype=np.int64)
    extra = () if d == 0 else (d,)
    return _uuid(int(k.bits(key, "anon_hi", *extra)[0]), int(k.bits(key, "anon_lo", *extra)[0]))


def _uuid(hi: int, lo: int) -> str:
    return uuid4_str(lambda _bits: (hi << 64) | lo)


def _first_ua(desktop_u: np.ndarray, pick_u: np.ndarray) -> np.ndarray:
    """The user agent (index into USER_AGENTS) of the device a visitor arrives on (simulation.behaviour)."""
    desktop = desktop_u < FIRST_DEVICE_DESKTOP_SHARE
    return np.where(desktop, _DESKTOP[np.minimum((pick_u * len(_DESKTOP)).astype(int), len(_DESKTOP) - 1)],
                    _HANDHELD[np.minimum((pick_u * len(_HANDHELD)).astype(int), len(_HANDHELD) - 1)]).astype(np.int16)


def _other_ua(k: _Keyed, key: np.ndarray, d: int, first: int) -> int:
    """The user agent of another device ``d``: of the other kind than the first (desktop / handheld)."""
    pool = _HANDHELD if USER_AGENTS[first][1] == "desktop" else _DESKTOP
    return int(pool[min(int(k.uniform(key, "ua", d)[0] * len(pool)), len(pool) - 1)])


# -- state ----------------------------------------------------------------------------------------
# One row per signed-up user; -1 means "never" in day columns, NaN "not yet" in probabilities.
_STATE_SCHEMA: dict[str, pl.DataType] = {
    "idx": pl.Int64(), "user_id": pl.String(), "anonymous_id": pl.String(), "signup_day": pl.Int32(),
    "signup_ms": pl.Int64(), "signup_method": pl.String(), "n_devices": pl.Int8(), "devices_used": pl.Int8(),
    "consent_due_ms": pl.Int64(), "consent_changed_day": pl.Int32(),
    "channel": pl.String(), "ua": pl.Int16(), "locale": pl.Int16(), "analytics": pl.Boolean(),
    "marketing": pl.Boolean(), "engagement": pl.Float64(), "price_sensitivity": pl.Float64(),
    "onboarding_variant": pl.String(),
    "onboarding_steps": pl.Int8(), "onboarded": pl.Boolean(), "p_onboarding_step": pl.Float64(),
    "p_trial": pl.Float64(),
    "trial_due_ms": pl.Int64(), "plan": pl.String(), "status": pl.String(), "trial_start": pl.Int32(),
    "trial_start_ms": pl.Int64(),
    "trial_end": pl.Int32(), "early_day": pl.Int32(), "nudged": pl.Boolean(), "nudge_day": pl.Int32(),
    "paywall_variant": pl.String(),
    "paywall_day": pl.Int32(), "p_convert_base": pl.Float64(), "p_convert_control": pl.Float64(),
    "p_convert": pl.Float64(), "converted_day": pl.Int32(), "amount": pl.Float64(), "next_payment": pl.Int32(),
    "offer_until": pl.Int32(), "churned_day": pl.Int32(), "dormant_day": pl.Int32(), "billing_due": pl.Int32(),
    "revenue_total": pl.Float64(),
    "messages_total": pl.Int32(), "consent_violations_total": pl.Int32(),
}
# Visitors who may still come back anonymously or sign up later (keyed draws re-derive the rest).
_VISITOR_SCHEMA: dict[str, pl.DataType] = {"idx": pl.Int64(), "arrival_ms": pl.Int64(), "signup_ms": pl.Int64()}
_CURSOR_VERSION = 2  # 1: sign-up on arrival, one device, no consent changes or lifecycle email
_NP_DTYPES = {pl.Int64(): np.int64, pl.Int32(): np.int32, pl.Int16(): np.int16, pl.Int8(): np.int8,
              pl.Boolean(): np.bool_, pl.Float64(): np.float64, pl.String(): object}


def _empty_state() -> dict[str, np.ndarray]:
    return {name: np.empty(0, dtype=_NP_DTYPES[dt]) for name, dt in _STATE_SCHEMA.items()}


def _state_frame(state: dict[str, np.ndarray]) -> pl.DataFrame:
    return pl.DataFrame({name: pl.Series(name, state[name].tolist() if dt == pl.String() else state[name], dtype=dt)
                         for name, dt in _STATE_SCHEMA.items()})


def _state_from_frame(frame: pl.DataFrame) -> dict[str, np.ndarray]:
    out = {}
    for name, dt in _STATE_SCHEMA.items():
        col = frame[name]
        out[name] = np.array(col.to_list(), dtype=object) if dt == pl.String() else col.to_numpy().astype(
            _NP_DTYPES[dt], copy=True)
    return out


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    write(partial)
    os.replace(partial, path)


def _write_parquet(path: Path, frame: pl.DataFrame) -> None:
    _atomic_write(path, lambda p: frame.write_parquet(p, compression="zstd", statistics=False))


def _write_json(path: Path, data: Any) -> None:
    _atomic_write(path, lambda p: p.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)))


# -- the simulator --------------------------------------------------------------------------------
class ClosedLoopSimulator:
    """Steps the product one day at a time, acting on the growth loops' outbox.

    Args:
        root: the storage root (local directory); landing files go to ``<root>/landing/events``.
        seed: run seed (non-negative int).
        start: the first simulated day.
        config: model knobs and true effects.

    A new object on a root that already holds a run continues it (same seed, start and config
    required); ``step`` is deterministic given the seed, the day and its inputs, so stopping and
    resuming gives byte-identical landing files to one continuous run.
    """

    def __init__(self, root: str | os.PathLike[str], *, seed: int, start: date,
                 config: ClosedLoopConfig | None = None) -> None:
        text = os.fspath(root)
        if "://" in text:
            raise ConfigError("root", f"{text!r} is an object-store URI", "Simulate into a local directory.")
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ConfigError("seed", f"is {seed!r}", "Pass a non-negative integer.")
        if _day_number(start) < 1:
            raise ConfigError("start", f"is {start}", "Start after 1970-01-01.")
        self.root = Path(text)
        self.seed = seed
        self.start = start
        self.config = config or ClosedLoopConfig()
        self.base = closed_loop_dir(self.root)
        self.landing_dir = self.root / "landing" / "events"
        self._keyed = _Keyed(seed)
        cursor = self._read_cursor()
        if cursor is not None:
            mine = {"seed": seed, "start": start.isoformat(), "config": self.config.to_json()}
            theirs = {k: cursor[k] for k in mine}
            gone = retired_parameters(cursor["config"])
            # The product model changed since that run: it cannot go on with the same behaviour.
            if gone or cursor.get("version") != _CURSOR_VERSION:
                why = f"parameters since removed: {', '.join(gone)}" if gone else (
                    f"state version {cursor.get('version')}, this model writes {_CURSOR_VERSION}")
                raise ConfigError("ClosedLoopSimulator", f"{self.base} holds a run of an earlier simulator model "
                                  f"({why})",
                                  "Simulate into a fresh root (remove this one, or set GROWTHLAKE_ROOT elsewhere).")
            if orjson.dumps(mine, option=orjson.OPT_SORT_KEYS) != orjson.dumps(theirs, option=orjson.OPT_SORT_KEYS):
                raise ConfigError("ClosedLoopSimulator", f"{self.base} holds a run with seed {cursor['seed']}, "
                                  f"start {cursor['start']} and another config",
                                  "Use the same seed, start and config to continue it, or a fresh root.")

    # -- cursor and state --
    def _read_cursor(self) -> dict[str, Any] | None:
        path = self.base / "cursor.json"
        return orjson.loads(path.read_bytes()) if path.exists() else None

    @property
    def next_day(self) -> date:
        """The day the next ``step`` must simulate."""
        cursor = self._read_cursor()
        return date.fromisoformat(cursor["next_day"]) if cursor else self.start

    def users(self) -> pl.DataFrame:
        """The users' current state (one row per signed-up user)."""
        state, _, _ = self._load()
        return _state_frame(state)

    def _load(self) -> tuple[dict[str, np.ndarray], set[str], dict[str, Any]]:
        state, delivered, _, cursor = self._load_all()
        return state, delivered, cursor

    def _load_all(self) -> tuple[dict[str, np.ndarray], set[str], pl.DataFrame, dict[str, Any]]:
        cursor = self._read_cursor()
        if cursor is None:
            return (_empty_state(), set(), pl.DataFrame(schema=_VISITOR_SCHEMA),
                    {"next_day": self.start.isoformat(), "next_visitor": 0})
        state = _state_from_frame(pl.read_parquet(self.base / cursor["users_file"]))
        delivered = set(pl.read_parquet(self.base / cursor["delivered_file"])["message_key"].to_list())
        visitors = pl.read_parquet(self.base / cursor["visitors_file"])
        return state, delivered, visitors, cursor

    # -- one day --
    def step(self, day: date, *, flags_document: Mapping[str, Any] | None = None,
             messages: pl.DataFrame | None = None) -> DayTruth:
        """Simulate ``day``: deliver due messages, evaluate flags, land the day's events, record truth.

        Args:
            day: must equal :attr:`next_day`.
            flags_document: a GrowthBook features document ``{"features": {...}}``; flags
                ``onboarding_variant`` (at sign-up) and ``paywall_variant`` (at the end of a trial)
                are evaluated per user with the ``growthbook`` SDK. None or a missing flag: control.
            messages: the message outbox (or any frame with ``person_id``, ``template`` and
                ``sent_at`` and/or ``created_at``, optionally ``message_id``). Messages sent before
                ``day`` 00:00 UTC plus ``delivery_cutoff_hours`` (1 h: the nightly decision run's
                emails) that were not delivered yet are delivered today; the frame may
                hold older (already delivered) and newer (not yet due) rows.

        Returns:
            The day's truth, also written to ``simulator/closed_loop/truth/``.

        Raises:
            ConfigError: ``day`` is not the next day to simulate, or an input is malformed.
        """
        t0 = time.perf_counter()
        dn = _day_number(day)
        state, delivered, visitors, cursor = self._load_all()
        expected = date.fromisoformat(cursor["next_day"])
        if day != expected:
            raise ConfigError("step(day)", f"{day} is not the next day to simulate ({expected})",
                              "Step the days in order, starting at next_day.")
        flags = Flags(flags_document)
        due = messages_due(messages, dn * MS_DAY + self.config.delivery_cutoff_hours * 3_600_000, delivered)
        run = _DayRun(self, state, dn, int(cursor["next_visitor"]), flags)
        run.deliver(due)
        run.churn_and_renew()
        run.end_trials()
        run.sessions()
        next_visitors = run.visitors(visitors)
        run.lifecycle_email()

        writer = LandingWriter(self.landing_dir, batch_name=f"closed-loop-s{self.seed}-{day:%Y%m%d}",
                               max_lines_per_file=self.config.max_lines_per_file,
                               max_buffered_bytes=self.config.max_buffered_bytes)
        try:
            by_name, no_consent = run.land(writer)
            writer.close()
        except BaseException:
            writer.abort()
            raise
        users = run.truth_users(day)
        msgs = pl.DataFrame(run.message_rows, schema=MESSAGE_SCHEMA)
        truth = DayTruth(day=day, users=users, messages=msgs, arrivals=run.n_arrivals, signups=run.n_signups,
                         events_written=sum(by_name.values()), events_by_name=by_name,
                         no_analytics_consent=no_consent, unknown_flag_values=flags.unknown_values,
                         files_written=writer.files_written, elapsed_s=0.0)

        # Publish: truth and next state first, the cursor last (the commit point). A crash before
        # the cursor moves re-runs the day from the old state, rewriting identical files.
        next_dn = dn + 1
        tag = _date(next_dn).isoformat()
        _write_parquet(self.base / "truth" / f"day={day.isoformat()}.parquet", users)
        _write_parquet(self.base / "truth" / "messages" / f"day={day.isoformat()}.parquet", msgs)
        _write_json(self.base / "truth" / f"day={day.isoformat()}.json", {
            "day": day.isoformat(), "arrivals": run.n_arrivals, "signups": run.n_signups,
            "events_written": truth.events_written, "events_by_name": by_name, "no_analytics_consent": no_consent,
            "files_written": writer.files_written, "messages_delivered": msgs.height,
            "unknown_flag_values": flags.unknown_values,
        })
        users_file, delivered_file = f"state/users-{tag}.parquet", f"state/delivered-{tag}.parquet"
        visitors_file = f"state/visitors-{tag}.parquet"
        _write_parquet(self.base / users_file, _state_frame(run.s))
        _write_parquet(self.base / visitors_file, next_visitors)
        keys = sorted(delivered | {m.key for m in due})
        _write_parquet(self.base / delivered_file,
                       pl.DataFrame({"message_key": keys}, schema={"message_key": pl.String}))
        _write_json(self.base / "cursor.json", {
            "version": _CURSOR_VERSION, "seed": self.seed, "start": self.start.isoformat(),
            "config": self.config.to_json(),
            "next_day": tag, "next_visitor": run.next_visitor, "users_file": users_file,
            "delivered_file": delivered_file, "visitors_file": visitors_file,
        })
        for old in (self.base / "state").glob("*.parquet"):
            if old.name not in (Path(users_file).name, Path(delivered_file).name, Path(visitors_file).name):
                old.unlink(missing_ok=True)
        return replace(truth, elapsed_s=round(time.perf_counter() - t0, 4))


class _DayRun:
    """The mutable work of one ``step``: state arrays, today's flags, and the events to land."""

    def __init__(self, sim: ClosedLoopSimulator, state: dict[str, np.ndarray], dn: int, next_visitor: int,
                 flags: Flags) -> None:
        self.sim, self.cfg, self.k, self.flags = sim, sim.config, sim._keyed, flags
        self.s = state
        self.dn = dn
        self.t0 = dn * MS_DAY
        self.next_visitor = next_visitor
        self.n0 = n = len(state["idx"])
        self.r = random.Random(f"growthlake-closed-loop:{sim.seed}:{dn}")
        self.g = np.random.default_rng([sim.seed, dn, 0xC105ED])
        self.events: list[tuple] = []
        self.message_rows: list[dict[str, Any]] = []
        self.pos = {uid: i for i, uid in enumerate(state["user_id"].tolist())}
        self.n_arrivals = self.n_signups = 0
        hourly = self.cfg.hourly_profile
        self.hour_cum_session = np.cumsum(hourly[:23])
        self.hour_cum_arrival = np.cumsum(hourly[:22])
        self.hour_cum_all = np.cumsum(hourly)
        self.feature_cum = np.cumsum(FEATURE_WEIGHTS)
        self.fmt = TimestampFormatter()
        # Today's per-user facts, for existing users (new users are appended in arrivals()).
        self.day: dict[str, list] = {
            "new_today": [False] * n, "active_today": [False] * n, "events_today": [0] * n,
            "messages_delivered_today": [0] * n, "trial_nudge_delivered_today": [False] * n,
            "retention_offer_delivered_today": [False] * n, "consent_violations_today": [0] * n,
            "trial_started_today": [False] * n, "paywall_exposed_today": [False] * n,
            "converted_today": [False] * n, "revenue_today": [0.0] * n, "payment_today": [False] * n,
            "churn_hazard": [None] * n, "retention_offer_active": [False] * n, "churned_today": [False] * n,
            "p_active": [None] * n, "u_convert": [None] * n, "p_dormant": [None] * n,
            "payment_failed_today": [False] * n, "lifecycle_emails_today": [0] * n,
        }
        self.contexts: dict[tuple[int, int], dict] = {}
        self.ip_bits = self.k.bits(state["idx"], "ip")
        self.n_new = 0

    # -- helpers --
    def _emit(self, ts: int, name: str, i: int | None, uid: str | None, anon: str, sid: str | None,
              props: dict, ctx: dict) -> None:
        self.events.append((ts, name, uid, anon, sid, props, ctx))
        if i is not None:
            self.day["events_today"][i] += 1

    def _gap(self, mean_ms: int = 80_000) -> int:
        return 8_000 + min(_MAX_GAP_MS, int(self.r.expovariate(1.0 / mean_ms)))

    def _hour_time(self, cum: np.ndarray) -> int:
        h = int(np.searchsorted(cum, self.r.random() * cum[-1], side="right"))
        return self.t0 + min(h, len(cum) - 1) * MS_HOUR + self.r.randrange(MS_HOUR)

    def _ctx(self, i: int, d: int = 0) -> dict:
        """User ``i``'s context on their device ``d`` (0: the one they arrived on)."""
        ctx = self.contexts.get((i, d))
        if ctx is None:
            s = self.s
            if d == 0:
                ip, ua = _ip(int(self.ip_bits[i])), int(s["ua"][i])
            else:
                key = np.array([s["idx"][i]], dtype=np.int64)
                ip, ua = _ip(int(self.k.bits(key, "ip", d)[0])), _other_ua(self.k, key, d, int(s["ua"][i]))
            ctx = self.contexts[(i, d)] = {
                "ip": ip, "user_agent": USER_AGENTS[ua][0], "locale": LOCALES[int(s["locale"][i])],
                "consent": {"analytics": bool(s["analytics"][i]), "marketing": bool(s["marketing"][i])}}
        return ctx

    def _user(self, i: int, d: int = 0) -> tuple[str, str, dict]:
        anon = self.s["anonymous_id"][i] if d == 0 else _anonymous_id(self.k, int(self.s["idx"][i]), d)
        return self.s["user_id"][i], anon, self._ctx(i, d)

    # -- 1. messages --
    def deliver(self, due: list[Message]) -> None:
        cfg, s, day = self.cfg, self.s, self.day
        for m in due:
            i = self.pos.get(m.person_id)
            row = {"day": _date(self.dn), "message_key": m.key, "person_id": m.person_id, "template": m.template,
                   "sent_at": datetime.fromtimestamp(m.sent_ms / 1000, tz=UTC), "user_index": None,
                   "known_recipient": i is not None, "marketing_consent": None, "consent_violation": False,
                   "status_at_delivery": None, "effective": False, "opened": False, "clicked": False}
            self.message_rows.append(row)
            if i is None:
                continue
            status = s["status"][i]
            row.update(user_index=int(s["idx"][i]), marketing_consent=bool(s["marketing"][i]),
                       status_at_delivery=status)
            day["messages_delivered_today"][i] += 1
            s["messages_total"][i] += 1
            if not s["marketing"][i]:
                row["consent_violation"] = True  # the user ignores it: no effect, no events
                day["consent_violations_today"][i] += 1
                s["consent_violations_total"][i] += 1
                continue
            if m.template == cfg.trial_nudge_template:
                day["trial_nudge_delivered_today"][i] = True
                if status == "trial":
                    row["effective"] = True
                    if not s["nudged"][i]:
                        s["nudged"][i], s["nudge_day"][i] = True, self.dn
            elif m.template == cfg.retention_offer_template:
                day["retention_offer_delivered_today"][i] = True
                if status == "paying":
                    row["effective"] = True
                    s["offer_until"][i] = max(int(s["offer_until"][i]), self.dn + cfg.retention_offer_days)
            dormant = s["dormant_day"][i] >= 0
            if self.k.scalar("open", m.key) < open_probability(cfg, float(s["engagement"][i]), dormant):
                row["opened"] = True
                uid, anon, ctx = self._user(i)
                email_id = "em_" + hashlib.sha256(m.key.encode()).hexdigest()[:16]
                t = self._hour_time(self.hour_cum_session)
                props = {"campaign": m.template, "email_id": email_id}
                self._emit(t, "email_opened", i, uid, anon, None, props, ctx)
                if self.k.scalar("click", m.key) < cfg.email_click_rate:
                    row["clicked"] = True
                    link = self.r.choice(_EMAIL_LINKS.get(m.template, _DEFAULT_LINKS))
                    self._emit(t + 3_000 + self.r.randrange(90_000), "email_clicked", i, uid, anon, None,
                               {**props, "link": link}, ctx)

    # -- 2. churn and renewals --
    def churn_and_renew(self) -> None:
        cfg, s, dn = self.cfg, self.s, self.dn
        paying = np.flatnonzero((s["status"] == "paying") & (s["converted_day"] < dn)) if self.n0 else np.empty(0, int)
        if paying.size == 0:
            return
        offer = s["offer_until"][paying] > dn
        hazard = cancel_daily_hazard(cfg, p_cancel_monthly(cfg, s["price_sensitivity"][paying]))
        hazard = np.where(offer, np.minimum(1.0, hazard * cfg.retention_offer_churn_multiplier), hazard)
        churn = self.k.uniform(s["idx"][paying], "churn", dn) < hazard
        fails = self.k.uniform(s["idx"][paying], "payment_failed", dn) < cfg.payment_failure_rate
        for j, i in enumerate(paying.tolist()):
            self.day["churn_hazard"][i] = float(hazard[j])
            self.day["retention_offer_active"][i] = bool(offer[j])
            uid, anon, ctx = self._user(i)
            plan, amount = s["plan"][i], float(s["amount"][i])
            if churn[j]:
                s["status"][i], s["churned_day"][i], s["next_payment"][i], s["billing_due"][i] = "churned", dn, -1, -1
                self.day["churned_today"][i] = True
                self._emit(self._hour_time(self.hour_cum_all), "subscription_cancelled", i, uid, anon, None,
                           {"plan": plan, "reason": self.r.choice(CANCEL_REASONS)}, ctx)
            elif s["next_payment"][i] == dn:
                retry = s["billing_due"][i] >= 0
                if not retry and fails[j]:  # simulation.behaviour: the retry, PAYMENT_RETRY_DAYS later, succeeds
                    s["billing_due"][i], s["next_payment"][i] = dn, dn + PAYMENT_RETRY_DAYS
                    self.day["payment_failed_today"][i] = True
                    self._emit(self._hour_time(self.hour_cum_all), "payment_failed", i, uid, anon, None,
                               {"amount": amount, "currency": cfg.currency,
                                "reason": self.r.choice(PAYMENT_FAILURE_REASONS)}, ctx)
                    continue
                due = int(s["billing_due"][i]) if retry else dn  # billing dates stay where they were
                s["next_payment"][i], s["billing_due"][i] = due + cfg.billing_period_days, -1
                self._pay(i, self._hour_time(self.hour_cum_all), amount)

    def _pay(self, i: int, t: int, amount: float) -> None:
        uid, anon, ctx = self._user(i)
        self._emit(t, "payment_succeeded", i, uid, anon, None,
                   {"amount": amount, "currency": self.cfg.currency, "invoice_id": short_hex(self.r.getrandbits, "in_"),
                    "plan": self.s["plan"][i]}, ctx)
        self.day["revenue_today"][i] += amount
        self.day["payment_today"][i] = True
        self.s["revenue_total"][i] += amount

    # -- 3. trial ends: paywall and conversion --
    def end_trials(self) -> None:
        cfg, s, dn = self.cfg, self.s, self.dn
        # Early converters pay before the trial ends (simulation.behaviour): no paywall, no nudge needed.
        for i in np.flatnonzero((s["status"] == "trial") & (s["early_day"] == dn)).tolist():
            price = float(cfg.plan_prices[s["plan"][i]])
            s["status"][i], s["converted_day"][i], s["amount"][i] = "paying", dn, price
            s["next_payment"][i] = dn + cfg.billing_period_days
            self.day["converted_today"][i] = True
            uid, anon, ctx = self._user(i)
            t = self._hour_time(self.hour_cum_session)
            self._emit(t, "subscription_started", i, uid, anon, None,
                       {"plan": s["plan"][i], "amount": price, "currency": cfg.currency}, ctx)
            self._pay(i, t + 1_000 + self.r.randrange(2_000), price)
        ending = np.flatnonzero((s["status"] == "trial") & (s["trial_end"] == dn))
        if ending.size == 0:
            return
        p_base = late_conversion_probability(cfg, p_convert(cfg, s["engagement"][ending],
                                                             s["price_sensitivity"][ending]))
        p_control = p_base + cfg.trial_nudge_lift * s["nudged"][ending]
        u = self.k.uniform(s["idx"][ending], "convert")
        for j, i in enumerate(ending.tolist()):
            variant = self.flags.value(cfg.paywall_flag, s["user_id"][i], cfg.paywall_variants)
            effect = cfg.paywall_variants[variant]
            p = min(1.0, float(p_control[j]) * effect.conversion_multiplier)
            price = float(cfg.plan_prices[s["plan"][i]])
            s["paywall_variant"][i], s["paywall_day"][i] = variant, dn
            s["p_convert_base"][i], s["p_convert_control"][i], s["p_convert"][i] = p_base[j], p_control[j], p
            self.day["paywall_exposed_today"][i] = True
            self.day["u_convert"][i] = float(u[j])
            if u[j] < p:
                s["status"][i], s["converted_day"][i] = "paying", dn
                s["amount"][i] = round(price * effect.price_factor, 2)
                s["next_payment"][i] = dn + cfg.billing_period_days
                self.day["converted_today"][i] = True
            else:
                s["status"][i] = "expired"

    # -- 4. sessions (where delayed trials start and consent changes) --
    def _early_day(self, idx: int, engagement: float, price_sensitivity: float, start: int) -> int:
        """The day a trial started on ``start`` converts early (simulation.behaviour), or -1."""
        cfg, key = self.cfg, np.array([idx], dtype=np.int64)
        p = float(p_convert(cfg, engagement, price_sensitivity))
        if cfg.trial_days < 2 or self.k.uniform(key, "early_convert")[0] >= p * cfg.early_conversion_share:
            return -1
        return start + 1 + int(self.k.uniform(key, "early_convert_day")[0] * (cfg.trial_days - 2))

    def _begin_trial(self, i: int, t: int) -> None:
        s = self.s
        s["status"][i], s["trial_start"][i], s["trial_end"][i] = "trial", self.dn, self.dn + self.cfg.trial_days
        s["trial_start_ms"][i] = t
        s["early_day"][i] = self._early_day(int(s["idx"][i]), float(s["engagement"][i]),
                                            float(s["price_sensitivity"][i]), self.dn)
        s["nudged"][i], s["nudge_day"][i] = False, -1
        self.day["trial_started_today"][i] = True

    def sessions(self) -> None:
        cfg, s, dn, day = self.cfg, self.s, self.dn, self.day
        rows = np.flatnonzero(s["signup_day"] < dn) if self.n0 else np.empty(0, int)
        if rows.size == 0:
            return
        # simulation.behaviour: users go dormant (no more sessions) with the shared hazard; weekends are quieter.
        awake = s["dormant_day"][rows] < 0
        hazard = dormancy_hazard(cfg, s["engagement"][rows], paying=s["status"][rows] == "paying")
        falls = awake & (self.k.uniform(s["idx"][rows], "dormant", dn) < hazard)
        s["dormant_day"][rows[falls]] = dn
        p = p_active_today(cfg, s["engagement"][rows], onboarded=s["onboarded"][rows], status=s["status"][rows],
                           day_number=dn)
        forced = np.array([day["paywall_exposed_today"][i] for i in rows.tolist()], dtype=bool)
        active = ((self.k.uniform(s["idx"][rows], "active", dn) < p) & awake & ~falls) | forced
        n_sessions = 1 + self.g.poisson(extra_sessions_mean(cfg, s["engagement"][rows]))
        for j, i in enumerate(rows.tolist()):
            day["p_active"][i] = float(p[j])
            day["p_dormant"][i] = float(hazard[j]) if awake[j] else None
            if not active[j]:
                continue
            day["active_today"][i] = True
            starts = sorted(self._hour_time(self.hour_cum_session) for _ in range(int(n_sessions[j])))
            last = -1
            for k, start in enumerate(starts):
                if k and start < last + SESSION_GAP_MS:
                    start = last + SESSION_GAP_MS
                if start > self.t0 + 23 * MS_HOUR:
                    break
                last = self._session(i, start, first=k == 0)

    def _session(self, i: int, t: int, *, first: bool) -> int:
        s, day, r, n_dev = self.s, self.day, self.r, int(self.s["n_devices"][i])
        d = 0 if n_dev == 1 or r.random() < PRIMARY_DEVICE_SHARE else r.randrange(1, n_dev)
        uid, anon, ctx = self._user(i, d)
        sid = short_hex(r.getrandbits, "ses_")
        if 0 <= s["consent_due_ms"][i] <= t and s["consent_changed_day"][i] < 0:  # simulation.behaviour
            s["marketing"][i], s["consent_changed_day"][i] = not s["marketing"][i], self.dn
            for key in [key for key in self.contexts if key[0] == i]:
                del self.contexts[key]  # the events before keep the old consent
            uid, anon, ctx = self._user(i, d)
            self._emit(t, "consent_updated", i, uid, anon, sid, dict(ctx["consent"]), ctx)
            t += self._gap(20_000)
        if not s["devices_used"][i] & (1 << d):
            s["devices_used"][i] |= 1 << d
            self._emit(t, "user_logged_in", i, uid, anon, sid, {"method": s["signup_method"][i]}, ctx)
            t += self._gap(15_000)
        self._emit(t, "page_viewed", i, uid, anon, sid, {"path": "/app", "title": PAGE_TITLES["/app"]}, ctx)
        # A delayed trial starts at the first session after it is due (not for a dormant user: no sessions).
        if s["status"][i] == "free" and 0 <= s["trial_due_ms"][i] <= t:
            t += self._gap()
            self._begin_trial(i, t)
            self._trial_started(i, t, sid, d)
        if first and day["paywall_exposed_today"][i]:
            t += self._gap()
            self._emit(t, "page_viewed", i, uid, anon, sid,  # the paywall
                       {"path": "/app/billing", "title": PAGE_TITLES["/app/billing"]}, ctx)
            viewed = self.flags.exposure(self.cfg.paywall_flag, uid)
            if viewed is not None:
                self._emit(t + 1, "experiment_viewed", i, uid, anon, sid, viewed, ctx)
            if day["converted_today"][i]:
                t_sub = t + 20_000 + self.r.randrange(100_000)
                amount = float(s["amount"][i])
                self._emit(t_sub, "subscription_started", i, uid, anon, None,
                           {"plan": s["plan"][i], "amount": amount, "currency": self.cfg.currency}, ctx)
                self._pay(i, t_sub + 1_000 + self.r.randrange(2_000), amount)
        n = 1 + int(self.g.poisson(actions_mean(self.cfg, float(s["engagement"][i]))))
        return self._actions(i, t, sid, uid, anon, ctx, n)

    def _trial_started(self, i: int, t: int, sid: str, d: int = 0) -> None:
        uid, anon, ctx = self._user(i, d)
        self._emit(t, "trial_started", i, uid, anon, sid,
                   {"plan": self.s["plan"][i], "trial_days": self.cfg.trial_days}, ctx)
    def _actions(self, i: int, t: int, sid: str, uid: str, anon: str, ctx: dict, n: int) -> int:
        """``n`` in-app actions (feature_used / page_viewed) of one session, stopping before the day ends."""
        r, limit, share = self.r, self.t0 + MS_DAY - 10 * MS_MINUTE, self.cfg.feature_share
        for _ in range(n):
            nxt = t + self._gap()
            if nxt >= limit:
                break
            t = nxt
            if r.random() < share:
                u = r.random() * self.feature_cum[-1]
                feature = FEATURES[min(int(np.searchsorted(self.feature_cum, u, side="right")), len(FEATURES) - 1)]
                self._emit(t, "feature_used", i, uid, anon, sid,
                           {"feature": feature, "duration_s": round(r.expovariate(1.0 / 45.0), 1)}, ctx)
            else:
                path = r.choice(APP_PAGES)
                self._emit(t, "page_viewed", i, uid, anon, sid, {"path": path, "title": PAGE_TITLES[path]}, ctx)
        return t

    # -- 5. visitors: arrivals, anonymous return visits, sign-ups --
    def _traits(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        """Every keyed trait and draw of visitors ``idx``: pure functions of the seed and the index, so a
        visitor who comes back days later is re-derived rather than stored."""
        cfg, k = self.cfg, self.k
        engagement = engagement_from_uniform(k.uniform(idx, "engagement"))
        shares = np.cumsum([c[0] for c in CHANNELS.values()])
        channel = np.minimum(np.searchsorted(shares, k.uniform(idx, "channel") * shares[-1], side="right"),
                             len(CHANNELS) - 1)
        multiplier = np.array([c[1] for c in CHANNELS.values()])[channel]
        devices = np.cumsum(cfg.device_count_weights)
        locales = np.cumsum(LOCALE_WEIGHTS)
        return {
            "idx": idx,
            "analytics": k.uniform(idx, "analytics") < cfg.analytics_consent_rate,
            "marketing": k.uniform(idx, "marketing") < cfg.marketing_consent_rate,
            "engagement": engagement,
            "sensitivity": price_sensitivity_from_uniform(k.uniform(idx, "price_sensitivity")),
            "ua": _first_ua(k.uniform(idx, "desktop"), k.uniform(idx, "ua")),
            "n_devices": 1 + np.minimum(np.searchsorted(devices, k.uniform(idx, "devices") * devices[-1],
                                                        side="right"), 2),
            "locale": np.minimum(np.searchsorted(locales, k.uniform(idx, "locale") * locales[-1], side="right"),
                                 len(LOCALES) - 1),
            "channel": channel,
            "signup": k.uniform(idx, "signup") < p_signup(cfg, engagement, multiplier),
            "signup_first_u": k.uniform(idx, "signup_first"), "signup_delay_u": k.uniform(idx, "signup_delay"),
            "n_returns": _poisson_from_uniform(k.uniform(idx, "returns"), return_visits_mean(cfg, engagement)),
            "uid_bits": k.bits(idx, "user_id"), "ip_bits": k.bits(idx, "ip"),
            "anon_hi": k.bits(idx, "anon_hi"), "anon_lo": k.bits(idx, "anon_lo"),
            "step_u": np.stack([k.uniform(idx, "onboarding_step", n) for n in range(len(ONBOARDING_STEPS))], axis=1),
            "trial_u": k.uniform(idx, "trial"), "delay_u": k.uniform(idx, "trial_delay"),
            "plan_u": k.uniform(idx, "plan"), "at_signup_u": k.uniform(idx, "trial_at_signup"),
            "consent_u": k.uniform(idx, "consent_change"), "consent_delay_u": k.uniform(idx, "consent_change_delay"),
        }

    def visitors(self, pending: pl.DataFrame) -> pl.DataFrame:
        """Today's arrivals (``arrivals_per_day``, fewer on weekends), the anonymous return visits and
        delayed sign-ups of earlier visitors, and every sign-up; returns the visitors still pending."""
        cfg, dn, t0 = self.cfg, self.dn, self.t0
        n = int(round(cfg.arrivals_per_day * arrival_factor(cfg, dn)))
        new_idx = np.arange(self.next_visitor, self.next_visitor + n, dtype=np.int64)
        self.next_visitor += n
        self.n_arrivals = n
        # Arrival times are keyed too: when a visitor comes back or signs up later follows from them.
        cum = self.hour_cum_arrival
        hour = np.minimum(np.searchsorted(cum, self.k.uniform(new_idx, "arrival_hour") * cum[-1], side="right"),
                          len(cum) - 1)
        new_ms = t0 + hour.astype(np.int64) * MS_HOUR + (self.k.uniform(new_idx, "arrival_ms") * MS_HOUR).astype(
            np.int64)
        idx = np.concatenate([pending["idx"].to_numpy().astype(np.int64), new_idx])
        arrival = np.concatenate([pending["arrival_ms"].to_numpy().astype(np.int64), new_ms])
        tr = self._traits(idx)
        due = np.concatenate([pending["signup_ms"].to_numpy().astype(np.int64), np.full(n, -1, dtype=np.int64)])
        n_old, end, window = pending.height, t0 + MS_DAY, 2 * MS_HOUR + RETURN_VISIT_WINDOW_DAYS * MS_DAY
        for j in range(n_old, n_old + n):
            if tr["signup"][j]:  # simulation.behaviour: on the first visit, or after return visits
                due[j] = arrival[j] + signup_delay_ms(cfg, float(tr["signup_first_u"][j]),
                                                      float(tr["signup_delay_u"][j]))
        plans: list[tuple[int, int, int]] = []  # (time, order, j): 0 first visit, 1 return visit, 2 sign-up
        channel_names = list(CHANNELS)
        return_u = [self.k.uniform(idx, "return", r) for r in range(int(tr["n_returns"].max(initial=0)))]
        for j in range(len(idx)):
            if j >= n_old:
                plans.append((int(arrival[j]), 0, j))
            if due[j] == arrival[j]:
                continue  # signs up on the first visit: no anonymous return visits
            for r in range(int(tr["n_returns"][j])):
                tv = int(arrival[j]) + return_visit_ms(float(return_u[r][j]))
                if t0 <= tv < end and (due[j] < 0 or tv < due[j]):
                    plans.append((tv, 1, j))
            if t0 <= due[j] < end:  # a late sign-up's session must fit in the day
                plans.append((min(int(due[j]), t0 + _LAST_SIGNUP_HOUR * MS_HOUR), 2, j))
        new_rows: list[dict[str, Any]] = []
        for t, kind, j in sorted(plans):
            anon = _uuid(int(tr["anon_hi"][j]), int(tr["anon_lo"][j]))
            ctx = {"ip": _ip(int(tr["ip_bits"][j])), "user_agent": USER_AGENTS[int(tr["ua"][j])][0],
                   "locale": LOCALES[int(tr["locale"][j])],
                   "consent": {"analytics": bool(tr["analytics"][j]), "marketing": bool(tr["marketing"][j])}}
            channel = channel_names[int(tr["channel"][j])]
            acq = self._acquisition(channel, int(idx[j]))
            t_end, sid = self._visit(t, anon, ctx, acq if kind == 0 else {}, float(tr["engagement"][j]))
            if (kind == 0 and due[j] == arrival[j]) or kind == 2:
                new_rows.append(self._signup(tr, j, t_end, sid, anon, ctx, acq, channel))
        self.n_signups = len(new_rows)
        self._append(new_rows)
        keep = (due >= end) | ((due < 0) & (arrival + window >= end))
        return pl.DataFrame({"idx": idx[keep], "arrival_ms": arrival[keep], "signup_ms": due[keep]},
                            schema=_VISITOR_SCHEMA)

    def _visit(self, t: int, anon: str, ctx: dict, acq: dict, engagement: float) -> tuple[int, str]:
        """An anonymous visit of marketing pages (``acq`` on its first page); returns its last time and session."""
        limit = self.t0 + MS_DAY - 10 * MS_MINUTE
        t, sid = min(t, limit - 1), short_hex(self.r.getrandbits, "ses_")
        for p in range(1 + min(7, int(self.g.poisson(visit_pages_mean(engagement))))):
            if p:
                if t + _MAX_GAP_MS + 8_000 >= limit:
                    break
                t += self._gap()
            path = self.r.choice(MARKETING_PAGES[:6]) if p == 0 else self.r.choice(MARKETING_PAGES)
            props = {"path": path, "title": PAGE_TITLES[path], **(acq if p == 0 else {})}
            self._emit(t, "page_viewed", None, None, anon, sid, props, ctx)
        return t, sid

    def _acquisition(self, channel: str, idx: int) -> dict[str, str]:
        """Where visitor ``idx`` came from (keyed: the first visit and a later sign-up carry the same)."""
        _, _, referrers, utms, campaigns = CHANNELS[channel]

        def pick(options: tuple, purpose: str) -> Any:
            return options[min(int(self.k.scalar(purpose, idx) * len(options)), len(options) - 1)]

        acq: dict[str, str] = {}
        if referrers:
            acq["referrer"] = pick(referrers, "referrer")
        if utms:
            acq["utm_source"], acq["utm_medium"] = pick(utms, "utm")
            acq["utm_campaign"] = pick(campaigns, "utm_campaign")
        return acq

    def _signup(self, tr: dict[str, np.ndarray], j: int, t: int, sid: str, anon: str, ctx: dict, acq: dict,
                channel: str) -> dict[str, Any]:
        cfg, r, dn = self.cfg, self.r, self.dn
        uid = f"usr_{int(tr['uid_bits'][j]):016x}"
        t += self._gap()
        method = r.choices(SIGNUP_METHODS, weights=SIGNUP_METHOD_WEIGHTS)[0]
        # The email is landed (ingestion masks it) and never stored by the simulator.
        email = f"{r.choice(FIRST_NAMES)}.{r.getrandbits(16):04x}@{r.choice(EMAIL_DOMAINS)}"
        i = len(self.s["idx"]) + self.n_new  # appended to the state after all arrivals
        self.n_new += 1
        self._grow_day()
        self.day["new_today"][i] = True
        self.day["active_today"][i] = True
        self.contexts[(i, 0)] = ctx
        self._emit(t, "user_signed_up", i, uid, anon, sid, {"method": method, "email": email, **acq}, ctx)
        device = USER_AGENTS[int(tr["ua"][j])][1]  # what the product knows at sign-up: the device type
        variant = self.flags.value(cfg.onboarding_flag, uid, cfg.onboarding_step_lift, {"deviceType": device})
        viewed = self.flags.exposure(cfg.onboarding_flag, uid)
        if viewed is not None:  # logged the millisecond after sign-up: no draw from the RNG
            self._emit(t + 1, "experiment_viewed", i, uid, anon, sid, viewed, ctx)
        # simulation.behaviour: the steps in order, each with the step probability, up to the first one missed
        eng, ps = float(tr["engagement"][j]), float(tr["sensitivity"][j])
        p_step = float(p_onboarding_step(cfg, eng, cfg.step_lift(variant, device)))
        steps = 0
        while steps < len(ONBOARDING_STEPS) and tr["step_u"][j, steps] < p_step:
            steps += 1
        completed = steps == len(ONBOARDING_STEPS)
        for index, step in enumerate(ONBOARDING_STEPS[:steps], 1):
            t += self._gap(120_000)
            self._emit(t, "onboarding_step_completed", i, uid, anon, sid,
                       {"step": step, "step_index": index, "variant": variant}, ctx)
        signup_ms = t
        p_start = float(p_trial(cfg, eng, ps))
        trial_due = -1
        if tr["trial_u"][j] < p_start:  # at sign-up, or 0.3-4 days later at the next session (simulation.behaviour)
            trial_due = signup_ms + trial_delay_ms(float(tr["at_signup_u"][j]), float(tr["delay_u"][j]), MS_DAY)
        consent_due = -1
        if tr["consent_u"][j] < cfg.consent_change_rate:
            consent_due = signup_ms + consent_change_delay_ms(float(tr["consent_delay_u"][j]))
        plan = "team" if tr["plan_u"][j] < float(p_team(cfg, ps)) else "pro"
        row = {
            "idx": int(tr["idx"][j]), "user_id": uid, "anonymous_id": anon, "signup_day": dn,
            "signup_ms": signup_ms, "signup_method": method, "n_devices": int(tr["n_devices"][j]), "devices_used": 1,
            "consent_due_ms": consent_due, "consent_changed_day": -1, "channel": channel,
            "ua": int(tr["ua"][j]), "locale": int(tr["locale"][j]), "analytics": bool(tr["analytics"][j]),
            "marketing": bool(tr["marketing"][j]), "engagement": eng, "price_sensitivity": ps,
            "onboarding_variant": variant, "onboarding_steps": steps, "onboarded": completed,
            "p_onboarding_step": p_step, "p_trial": p_start, "trial_due_ms": trial_due,
            "plan": plan, "status": "free", "trial_start": -1, "trial_start_ms": -1, "trial_end": -1, "early_day": -1,
            "nudged": False, "nudge_day": -1,
            "paywall_variant": None, "paywall_day": -1, "p_convert_base": math.nan, "p_convert_control": math.nan,
            "p_convert": math.nan, "converted_day": -1, "amount": 0.0, "next_payment": -1, "offer_until": -1,
            "churned_day": -1, "dormant_day": -1, "billing_due": -1, "revenue_total": 0.0, "messages_total": 0,
            "consent_violations_total": 0,
        }
        if trial_due == signup_ms:
            t += self._gap()
            row.update(status="trial", trial_start=dn, trial_start_ms=t, trial_end=dn + cfg.trial_days,
                       early_day=self._early_day(int(tr["idx"][j]), eng, ps, dn))
            self.day["trial_started_today"][i] = True
            self._emit(t, "trial_started", i, uid, anon, sid, {"plan": plan, "trial_days": cfg.trial_days}, ctx)
        # first steps in the product, same session
        self._actions(i, t, sid, uid, anon, ctx, int(self.g.poisson(FIRST_SESSION_ACTIONS_MEAN)))
        return row

    def _grow_day(self) -> None:
        for name, col in self.day.items():
            col.append({"new_today": False, "active_today": False, "events_today": 0, "messages_delivered_today": 0,
                        "consent_violations_today": 0, "revenue_today": 0.0, "lifecycle_emails_today": 0,
                        "churn_hazard": None, "p_active": None,
                        "u_convert": None, "p_dormant": None}.get(name, False))

    def _append(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        for name, dt in _STATE_SCHEMA.items():
            values = [row[name] for row in rows]
            new = np.array(values, dtype=object) if dt == pl.String() else np.array(values, dtype=_NP_DTYPES[dt])
            self.s[name] = np.concatenate([self.s[name], new]) if len(self.s[name]) else new

    # -- 6. the product's lifecycle email --
    def lifecycle_email(self) -> None:
        """Welcome, onboarding nudge, trial reminder, win-back and newsletter (simulation.behaviour), sent
        today to the signed-up users; openers open and click them like any email."""
        cfg, s, k, t0 = self.cfg, self.s, self.k, self.t0
        limit = t0 + MS_DAY - 5 * MS_MINUTE
        n = len(s["idx"])
        if n == 0:
            return
        rows = np.flatnonzero(lifecycle_may_send(cfg, self.dn, signup_day=s["signup_day"],
                                                 trial_start_day=s["trial_start"], dormant_day=s["dormant_day"]))
        welcome_u, nudge_u = k.uniform(s["idx"][rows], "welcome"), k.uniform(s["idx"][rows], "onboarding_nudge")
        for j, i in enumerate(rows.tolist()):
            converted = int(s["converted_day"][i])
            sends = lifecycle_sends(
                cfg, signup_ms=int(s["signup_ms"][i]), onboarded=bool(s["onboarded"][i]),
                trial_ms=None if s["trial_start_ms"][i] < 0 else int(s["trial_start_ms"][i]),
                converted_ms=None if converted < 0 else converted * MS_DAY,
                dormant_ms=None if s["dormant_day"][i] < 0 else int(s["dormant_day"][i]) * MS_DAY,
                welcome_u=float(welcome_u[j]), nudge_u=float(nudge_u[j]), since_ms=t0, until_ms=t0 + MS_DAY)
            for campaign, ts in sends:
                if campaign in MARKETING_CAMPAIGNS and not s["marketing"][i]:
                    continue
                self.day["lifecycle_emails_today"][i] += 1
                dormant = 0 <= s["dormant_day"][i] <= self.dn
                key = (int(s["idx"][i]), campaign, ts)
                if k.scalar("lifecycle_open", *key) >= open_probability(cfg, float(s["engagement"][i]), dormant):
                    continue
                uid, anon, ctx = self._user(i)
                opened = min(ts + open_delay_ms(k.scalar("lifecycle_open_delay", *key)), limit)
                props = {"campaign": campaign, "email_id": "em_" + hashlib.sha256(repr(key).encode()).hexdigest()[:16]}
                self._emit(opened, "email_opened", i, uid, anon, None, props, ctx)
                if k.scalar("lifecycle_click", *key) < cfg.email_click_rate:
                    self._emit(opened + 3_000 + self.r.randrange(90_000), "email_clicked", i, uid, anon, None,
                               {**props, "link": self.r.choice(EMAIL_LINKS[campaign])}, ctx)

    # -- landing and truth --
    def land(self, writer: LandingWriter) -> tuple[dict[str, int], int]:
        """Write the day's events (in time order) as canonical landing lines."""
        fmt, dumps, bits, rnd = self.fmt, orjson.dumps, self.r.getrandbits, self.r.random
        spread, last = self.cfg.max_delivery_delay_ms + 1, self.t0 + MS_DAY - 1
        by_name: dict[str, int] = {}
        no_consent = 0
        self.events.sort(key=lambda e: e[0])
        for ts, name, uid, anon, sid, props, ctx in self.events:
            if not self.t0 <= ts <= last:
                raise AssertionError(f"event {name} at {ts} outside its day")  # a model bug, never data
            rec = min(ts + int(rnd() * spread), last)
            ev = {"event_id": uuid4_str(bits), "event_name": name, "timestamp": fmt(ts), "received_at": fmt(rec),
                  "user_id": uid, "anonymous_id": anon, "session_id": sid, "properties": props, "context": ctx}
            writer.add(rec, dumps(ev), None)
            by_name[name] = by_name.get(name, 0) + 1
            no_consent += not ctx["consent"]["analytics"]
        return dict(sorted(by_name.items())), no_consent

    def truth_users(self, day: date) -> pl.DataFrame:
        s, d = self.s, self.day

        def as_date(col: np.ndarray) -> pl.Series:
            return pl.Series([None if v < 0 else _date(int(v)) for v in col.tolist()], dtype=pl.Date)

        def nan_null(col: np.ndarray) -> pl.Series:
            return pl.Series([None if math.isnan(v) else v for v in col.tolist()], dtype=pl.Float64)

        n = len(s["idx"])
        price = np.array([self.cfg.plan_prices[p] for p in s["plan"].tolist()], dtype=np.float64)
        factor = np.array([self.cfg.paywall_variants[v].price_factor if v is not None else math.nan
                           for v in s["paywall_variant"].tolist()], dtype=np.float64)
        exposed = np.array(d["paywall_exposed_today"], dtype=bool)
        exp_ctrl = np.where(exposed, s["p_convert_control"] * price, math.nan)
        exp_rev = np.where(exposed, s["p_convert"] * price * factor, math.nan)
        frame = pl.DataFrame({
            "day": pl.Series([day] * n, dtype=pl.Date),
            "user_index": pl.Series(s["idx"], dtype=pl.Int64),
            "user_id": pl.Series(s["user_id"].tolist(), dtype=pl.String),
            "anonymous_id": pl.Series(s["anonymous_id"].tolist(), dtype=pl.String),
            "signup_day": as_date(s["signup_day"]),
            "signed_up_at": pl.Series(s["signup_ms"], dtype=pl.Int64).cast(pl.Datetime("ms", "UTC")),
            "n_devices": pl.Series(s["n_devices"], dtype=pl.Int8),
            "devices_used": pl.Series([bin(int(v)).count("1") for v in s["devices_used"]], dtype=pl.Int8),
            "consent_changed_day": as_date(s["consent_changed_day"]),
            "new_today": pl.Series(d["new_today"], dtype=pl.Boolean),
            "channel": pl.Series(s["channel"].tolist(), dtype=pl.String),
            "analytics_consent": pl.Series(s["analytics"], dtype=pl.Boolean),
            "marketing_consent": pl.Series(s["marketing"], dtype=pl.Boolean),
            "engagement": pl.Series(s["engagement"], dtype=pl.Float64),
            "price_sensitivity": pl.Series(s["price_sensitivity"], dtype=pl.Float64),
            "status": pl.Series(s["status"].tolist(), dtype=pl.String),
            "onboarding_variant": pl.Series(s["onboarding_variant"].tolist(), dtype=pl.String),
            "device_type": pl.Series([USER_AGENTS[int(u)][1] for u in s["ua"]], dtype=pl.String),
            "p_onboarding_step": pl.Series(s["p_onboarding_step"], dtype=pl.Float64),
            "p_onboarding_complete": pl.Series(s["p_onboarding_step"] ** len(ONBOARDING_STEPS), dtype=pl.Float64),
            "onboarding_steps": pl.Series(s["onboarding_steps"], dtype=pl.Int8),
            "onboarding_completed": pl.Series(s["onboarded"], dtype=pl.Boolean),
            "p_trial": pl.Series(s["p_trial"], dtype=pl.Float64),
            "p_active": pl.Series(d["p_active"], dtype=pl.Float64),
            "active_today": pl.Series(d["active_today"], dtype=pl.Boolean),
            "p_dormant": pl.Series(d["p_dormant"], dtype=pl.Float64),
            "dormant": pl.Series(s["dormant_day"] >= 0, dtype=pl.Boolean),
            "dormant_day": as_date(s["dormant_day"]),
            "events_today": pl.Series(d["events_today"], dtype=pl.Int32),
            "plan": pl.Series(s["plan"].tolist(), dtype=pl.String),
            "trial_started_today": pl.Series(d["trial_started_today"], dtype=pl.Boolean),
            "in_trial": pl.Series(s["status"] == "trial", dtype=pl.Boolean),
            "trial_start_day": as_date(s["trial_start"]),
            "trial_end_day": as_date(s["trial_end"]),
            "early_conversion_day": as_date(s["early_day"]),
            "messages_delivered_today": pl.Series(d["messages_delivered_today"], dtype=pl.Int32),
            "lifecycle_emails_today": pl.Series(d["lifecycle_emails_today"], dtype=pl.Int32),
            "consent_violations_today": pl.Series(d["consent_violations_today"], dtype=pl.Int32),
            "trial_nudge_delivered_today": pl.Series(d["trial_nudge_delivered_today"], dtype=pl.Boolean),
            "retention_offer_delivered_today": pl.Series(d["retention_offer_delivered_today"], dtype=pl.Boolean),
            "nudged": pl.Series(s["nudged"], dtype=pl.Boolean),
            "nudge_day": as_date(s["nudge_day"]),
            "paywall_variant": pl.Series(s["paywall_variant"].tolist(), dtype=pl.String),
            "paywall_exposed_today": pl.Series(exposed, dtype=pl.Boolean),
            "paywall_day": as_date(s["paywall_day"]),
            "p_convert_base": nan_null(s["p_convert_base"]),
            "p_convert_control": nan_null(s["p_convert_control"]),
            "p_convert": nan_null(s["p_convert"]),
            "u_convert": pl.Series(d["u_convert"], dtype=pl.Float64),
            "expected_revenue_control": nan_null(exp_ctrl),
            "expected_revenue": nan_null(exp_rev),
            "converted_today": pl.Series(d["converted_today"], dtype=pl.Boolean),
            "converted_day": as_date(s["converted_day"]),
            "amount": pl.Series(s["amount"], dtype=pl.Float64),
            "payment_today": pl.Series(d["payment_today"], dtype=pl.Boolean),
            "payment_failed_today": pl.Series(d["payment_failed_today"], dtype=pl.Boolean),
            "revenue_today": pl.Series(d["revenue_today"], dtype=pl.Float64),
            "revenue_to_date": pl.Series(s["revenue_total"], dtype=pl.Float64),
            "churn_hazard": pl.Series(d["churn_hazard"], dtype=pl.Float64),
            "retention_offer_active": pl.Series(d["retention_offer_active"], dtype=pl.Boolean),
            "retention_offer_until": as_date(s["offer_until"]),
            "churned_today": pl.Series(d["churned_today"], dtype=pl.Boolean),
            "messages_to_date": pl.Series(s["messages_total"], dtype=pl.Int32),
            "consent_violations_to_date": pl.Series(s["consent_violations_total"], dtype=pl.Int32),
        })
        return frame
