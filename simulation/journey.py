"""One visitor's true journey: visits, sign-up, onboarding, sessions, trial, billing, emails.

Each user gets a private ``random.Random`` seeded from (run, user index), so a journey depends
only on the run arguments and the user's traits: never on which other users exist or on the
delivery faults drawn later. Events come back in causal (timestamp) order, as tuples
``(ts_ms, event_name, user_id, anonymous_id, session_id, properties, context)``.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from itertools import accumulate
from operator import itemgetter

from .behaviour import (
    FIRST_DEVICE_DESKTOP_SHARE,
    FIRST_SESSION_ACTIONS_MEAN,
    MARKETING_CAMPAIGNS,
    PAYMENT_RETRY_DAYS,
    PRIMARY_DEVICE_SHARE,
    SESSION_GAP_MS,
    TRIAL_AT_SIGNUP_SHARE,
    TRIAL_DELAY_DAYS,
    actions_mean,
    activated,
    consent_change_delay_ms,
    extra_sessions_mean,
    lifecycle_sends,
    open_delay_ms,
    open_probability,
    return_visit_ms,
    return_visits_mean,
    signup_delay_ms,
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
from .config import SimulatorConfig
from .formats import MS_DAY, MS_HOUR, short_hex, uuid4_str
from .population import CHANNEL_NAMES, Population

__all__ = ["JourneyModel", "UserOutcome"]

_NEVER = 1 << 62
_BY_TS = itemgetter(0)
_DESKTOP = tuple(ua for ua, kind in USER_AGENTS if kind == "desktop")
_HANDHELD = tuple(ua for ua, kind in USER_AGENTS if kind != "desktop")
_OCTETS = tuple(o for o in range(11, 224) if o not in (100, 127, 169, 172, 192, 198))


@dataclass
class UserOutcome:
    """What truly happened to one visitor inside the window (ms timestamps, None = never)."""

    anonymous_ids: list[str] = field(default_factory=list)
    locale: str = "en-US"
    referrer: str | None = None
    utm_source: str | None = None
    utm_medium: str | None = None
    utm_campaign: str | None = None
    user_id: str | None = None
    email: str | None = None
    signup_method: str | None = None
    signup_ms: int | None = None
    onboarding_steps: int = 0
    trial_ms: int | None = None
    plan: str | None = None
    converted_ms: int | None = None
    cancelled_ms: int | None = None
    churned_ms: int | None = None
    consent_changed_ms: int | None = None
    events: int = 0


class JourneyModel:
    """Per-run constants plus ``build(i)``, the journey of visitor ``i`` of ``population``."""

    def __init__(self, pop: Population, cfg: SimulatorConfig, *, seed_key: str, end_ms: int) -> None:
        self.cfg = cfg
        self.seed_key = seed_key
        self.end_ms = end_ms
        # Python lists: per-user scalar reads from numpy arrays would dominate the run time.
        self.cols = {name: getattr(pop, name).tolist() for name in pop.__dataclass_fields__}
        self.hour_cum = list(accumulate(cfg.hourly_profile))
        self.locale_cum = list(accumulate(LOCALE_WEIGHTS))
        self.method_cum = list(accumulate(SIGNUP_METHOD_WEIGHTS))
        self.feature_cum = list(accumulate(FEATURE_WEIGHTS))
        self.channels = [CHANNELS[name] for name in CHANNEL_NAMES]

    def build(self, i: int) -> tuple[list[tuple], UserOutcome]:
        return _Journey(self, i).run()


class _Journey:
    def __init__(self, m: JourneyModel, i: int) -> None:
        c = m.cols
        self.m, self.cfg, self.end = m, m.cfg, m.end_ms
        self.r = r = random.Random(f"growthlake-sim:{m.seed_key}:{i}:journey")
        self.arrival = c["arrival_ms"][i]
        self.eng = c["engagement"][i]
        self.p = {k: c[k][i] for k in ("p_signup", "p_onboarding_step", "p_trial", "p_team", "p_convert",
                                       "p_churn_daily", "p_active_daily", "p_cancel_monthly")}
        self.guided = c["guided_onboarding"][i]
        self.marketing = c["marketing_consent"][i]
        self.out = out = UserOutcome(locale=r.choices(LOCALES, cum_weights=m.locale_cum)[0])
        self.events: list[tuple] = []
        self.emit = self.events.append
        # Devices: an anonymous id, an IP and a user agent each; device 0 is where they arrived.
        n_dev = c["n_devices"][i]
        self.anon = [uuid4_str(r.getrandbits) for _ in range(n_dev)]
        first_ua = r.choice(_DESKTOP) if r.random() < FIRST_DEVICE_DESKTOP_SHARE else r.choice(_HANDHELD)
        uas = [first_ua] + [r.choice(_HANDHELD if first_ua in _DESKTOP else _DESKTOP) for _ in range(n_dev - 1)]
        self.devices = [(f"{r.choice(_OCTETS)}.{r.randrange(256)}.{r.randrange(256)}.{r.randrange(1, 255)}", ua)
                        for ua in uas]
        self.used = [True] + [False] * (n_dev - 1)
        self.ctx_before = self._contexts(c["analytics_consent"][i], self.marketing)
        self.ctx_after = self.ctx_before
        self.cc_due = self.cc_ms = _NEVER
        # Acquisition: where the first visit came from.
        _, _, referrers, utms, campaigns = m.channels[c["channel"][i]]
        acq: dict[str, str] = {}
        if referrers:
            out.referrer = acq["referrer"] = r.choice(referrers)
        if utms:
            src, medium = r.choice(utms)
            out.utm_source, out.utm_medium = acq["utm_source"], acq["utm_medium"] = src, medium
            out.utm_campaign = acq["utm_campaign"] = r.choice(campaigns)
        self.acq = acq
        self.uid: str | None = None
        self.trial_due = _NEVER
        self.convert_due = _NEVER
        self.bills: list[tuple[int, str, dict]] = []  # billing events, planned when the conversion is known
        self.billing_seed = f"growthlake-sim:{m.seed_key}:{i}:billing"

    def _contexts(self, analytics: bool, marketing: bool) -> list[dict]:
        consent = {"analytics": analytics, "marketing": marketing}
        return [{"ip": ip, "user_agent": ua, "locale": self.out.locale, "consent": consent} for ip, ua in self.devices]

    def _ctx(self, d: int, t: int) -> dict:
        return self.ctx_before[d] if t < self.cc_ms else self.ctx_after[d]

    def _poisson(self, lam: float) -> int:
        limit, k, prod = math.exp(-lam), 0, self.r.random()
        while prod > limit:
            k += 1
            prod *= self.r.random()
        return k

    def _gap(self, mean_ms: int = 80_000) -> int:
        return 8_000 + int(self.r.expovariate(1.0 / mean_ms))

    # -- anonymous phase ------------------------------------------------------------------
    def run(self) -> tuple[list[tuple], UserOutcome]:
        r, p, arrival = self.r, self.p, self.arrival
        signup_due = _NEVER
        if r.random() < p["p_signup"]:
            signup_due = arrival + signup_delay_ms(self.cfg, r.random(), r.random())
        t, sid = self._visit(arrival, first=True)
        if signup_due == arrival:
            self._signup(t + self._gap(), sid)
        else:
            n_returns = self._poisson(return_visits_mean(self.cfg, self.eng))
            for tv in sorted(arrival + return_visit_ms(r.random()) for _ in range(n_returns)):
                if tv >= signup_due or tv >= self.end:
                    break
                self._visit(tv, first=False)
            if signup_due < self.end:
                t, sid = self._visit(signup_due, first=False)
                self._signup(t + self._gap(), sid)
        if self.uid is not None:
            self._active_days()
            self._billing()
            self._emails()
        end = self.end
        events = [e for e in self.events if e[0] < end]
        events.sort(key=_BY_TS)
        self.out.anonymous_ids = [a for a, used in zip(self.anon, self.used, strict=True) if used]
        self.out.events = len(events)
        return events, self.out

    def _visit(self, t: int, *, first: bool) -> tuple[int, str]:
        r, anon, ctx = self.r, self.anon[0], self._ctx(0, t)
        sid = short_hex(r.getrandbits, "ses_")
        n = 1 + min(7, self._poisson(visit_pages_mean(self.eng)))
        for k in range(n):
            if k:
                t += self._gap()
            path = r.choice(MARKETING_PAGES[:6]) if k == 0 else r.choice(MARKETING_PAGES)
            props = {"path": path, "title": PAGE_TITLES[path]}
            if k == 0 and first:
                props.update(self.acq)
            self.emit((t, "page_viewed", self.uid, anon, sid, props, ctx))
        return t, sid

    # -- known user ---------------------------------------------------------------------------
    def _signup(self, t: int, sid: str) -> None:
        r, p, out, cfg = self.r, self.p, self.out, self.cfg
        if t >= self.end:
            return
        method = r.choices(SIGNUP_METHODS, cum_weights=self.m.method_cum)[0]
        self.uid = uid = short_hex(r.getrandbits, "usr_")
        out.user_id, out.signup_method, out.signup_ms = uid, method, t
        out.email = f"{r.choice(FIRST_NAMES)}.{r.getrandbits(16):04x}@{r.choice(EMAIL_DOMAINS)}"
        anon, ctx = self.anon[0], self._ctx(0, t)
        self.emit((t, "user_signed_up", uid, anon, sid, {"method": method, "email": out.email, **self.acq}, ctx))
        variant = "guided" if self.guided else "control"
        for index, step in enumerate(ONBOARDING_STEPS, 1):
            if r.random() >= p["p_onboarding_step"]:
                break
            t += self._gap(120_000)
            self.emit((t, "onboarding_step_completed", uid, anon, sid,
                       {"step": step, "step_index": index, "variant": variant}, ctx))
            out.onboarding_steps = index
        if r.random() < p["p_trial"]:
            self.trial_due = (out.signup_ms if r.random() < TRIAL_AT_SIGNUP_SHARE
                              else out.signup_ms + int(r.uniform(*TRIAL_DELAY_DAYS) * MS_DAY))
        if r.random() < cfg.consent_change_rate:
            self.cc_due = out.signup_ms + consent_change_delay_ms(r.random())
        if self.trial_due == out.signup_ms:
            t = self._start_trial(t + self._gap(), 0, sid)
        self._actions(t, anon, sid, ctx, self._poisson(FIRST_SESSION_ACTIONS_MEAN))

    def _start_trial(self, t: int, d: int, sid: str) -> int:
        r, out, cfg = self.r, self.out, self.cfg
        out.trial_ms, out.plan = t, ("team" if r.random() < self.p["p_team"] else "pro")
        self.emit((t, "trial_started", self.uid, self.anon[d], sid,
                   {"plan": out.plan, "trial_days": cfg.trial_days}, self._ctx(d, t)))
        if r.random() < self.p["p_convert"]:
            if r.random() < cfg.early_conversion_share:
                self.convert_due = t + int(r.uniform(1.0, cfg.trial_days - 1.0) * MS_DAY)
            else:
                self.convert_due = t + cfg.trial_days * MS_DAY + r.randrange(2 * MS_HOUR)
            self._plan_billing()
        return t

    def _status(self, t: int) -> str:
        """The user's status at ``t`` (simulation.behaviour's activation reads it)."""
        out = self.out
        if out.cancelled_ms is not None and out.cancelled_ms <= t:
            return "churned"
        if self.convert_due <= t:
            return "paying"
        if out.trial_ms is None or out.trial_ms > t:
            return "free"
        return "trial" if t < out.trial_ms + self.cfg.trial_days * MS_DAY else "expired"

    def _active_days(self) -> None:
        r, p, cfg, end = self.r, self.p, self.cfg, self.end
        last = self.events[-1][0]
        day, last_day = last // MS_DAY, (end - 1) // MS_DAY
        while day < last_day:
            day += 1
            # simulation.behaviour: the dormancy hazard (x paying_dormancy_factor once paying), activation, weekends
            churn = p["p_churn_daily"] * (cfg.paying_dormancy_factor if day * MS_DAY >= self.convert_due else 1.0)
            if r.random() < churn:
                self.out.churned_ms = day * MS_DAY
                return
            onboarded = self.out.onboarding_steps == len(ONBOARDING_STEPS)
            p_active = activated(cfg, p["p_active_daily"], onboarded=onboarded, status=self._status(day * MS_DAY),
                                 day_number=day)
            if r.random() >= p_active:
                continue
            n = 1 + self._poisson(extra_sessions_mean(cfg, self.eng))
            hours = r.choices(range(24), cum_weights=self.m.hour_cum, k=n)
            for start in sorted(day * MS_DAY + h * MS_HOUR + r.randrange(MS_HOUR) for h in hours):
                start = max(start, last + SESSION_GAP_MS)
                if start >= end:
                    return
                last = self._session(start)

    def _session(self, t: int) -> int:
        r, n_dev = self.r, len(self.anon)
        d = 0 if n_dev == 1 or r.random() < PRIMARY_DEVICE_SHARE else r.randrange(1, n_dev)
        anon, sid = self.anon[d], short_hex(r.getrandbits, "ses_")
        if t >= self.cc_due and self.cc_ms == _NEVER:
            self.cc_ms = t
            self.out.consent_changed_ms = t
            self.ctx_after = self._contexts(self.ctx_before[0]["consent"]["analytics"], not self.marketing)
            consent = self.ctx_after[0]["consent"]
            self.emit((t, "consent_updated", self.uid, anon, sid, dict(consent), self.ctx_after[d]))
            t += self._gap(20_000)
        ctx = self._ctx(d, t)
        if not self.used[d]:
            self.used[d] = True
            self.emit((t, "user_logged_in", self.uid, anon, sid, {"method": self.out.signup_method}, ctx))
            t += self._gap(15_000)
        self.emit((t, "page_viewed", self.uid, anon, sid, {"path": "/app", "title": PAGE_TITLES["/app"]}, ctx))
        if t >= self.trial_due and self.out.trial_ms is None:
            t = self._start_trial(t + self._gap(), d, sid)
        n = 1 + self._poisson(actions_mean(self.cfg, self.eng))
        return self._actions(t, anon, sid, ctx, n)

    def _actions(self, t: int, anon: str, sid: str, ctx: dict, n: int) -> int:
        r, uid, emit, share, cum = self.r, self.uid, self.emit, self.cfg.feature_share, self.m.feature_cum
        for _ in range(n):
            t += 8_000 + int(r.expovariate(1.0 / 80_000))
            if r.random() < share:
                props = {"feature": r.choices(FEATURES, cum_weights=cum)[0],
                         "duration_s": round(r.expovariate(1.0 / 45.0), 1)}
                emit((t, "feature_used", uid, anon, sid, props, ctx))
            else:
                path = r.choice(APP_PAGES)
                emit((t, "page_viewed", uid, anon, sid, {"path": path, "title": PAGE_TITLES[path]}, ctx))
        return t

    # -- server side: billing and lifecycle email ----------------------------------------------
    def _plan_billing(self) -> None:
        """The subscription's events inside the window, drawn with the user's own billing generator as
        soon as the conversion is known, so activation knows when a subscription is cancelled."""
        cfg, out, end, tc = self.cfg, self.out, self.end, self.convert_due
        if tc >= end:
            return
        r = random.Random(self.billing_seed)
        out.converted_ms, plan, bills = tc, out.plan, self.bills
        assert plan is not None  # a conversion is only due after a trial, which picks the plan
        amount, cur = float(cfg.plan_prices[plan]), cfg.currency
        bills.append((tc, "subscription_started", {"plan": plan, "amount": amount, "currency": cur}))
        paid, period = tc + 1_000 + r.randrange(2_000), cfg.billing_period_days * MS_DAY
        while paid < end:
            bills.append((paid, "payment_succeeded", {"amount": amount, "currency": cur,
                                                      "invoice_id": short_hex(r.getrandbits, "in_"), "plan": plan}))
            due = tc + (paid - tc) // period * period + period
            if r.random() < self.p["p_cancel_monthly"]:
                t = paid + int(r.uniform(0.05, 0.95) * (due - paid))
                if t < end:
                    out.cancelled_ms = t
                    bills.append((t, "subscription_cancelled", {"plan": plan, "reason": r.choice(CANCEL_REASONS)}))
                return
            paid = due
            if r.random() < cfg.payment_failure_rate:
                if due < end:
                    bills.append((due, "payment_failed", {"amount": amount, "currency": cur,
                                                          "reason": r.choice(PAYMENT_FAILURE_REASONS)}))
                paid = due + PAYMENT_RETRY_DAYS * MS_DAY  # the retry succeeds

    def _billing(self) -> None:
        uid, anon = self.uid, self.anon[0]
        for ts, name, props in self.bills:  # server-side: the context (consent) at the time of each event
            self.emit((ts, name, uid, anon, None, props, self._ctx(0, ts)))

    def _emails(self) -> None:
        r, cfg, out = self.r, self.cfg, self.out
        signup = out.signup_ms
        assert signup is not None  # only a signed-up user gets email
        converted = None if self.convert_due == _NEVER else self.convert_due
        sends = lifecycle_sends(cfg, signup_ms=signup, onboarded=out.onboarding_steps == len(ONBOARDING_STEPS),
                                trial_ms=out.trial_ms, converted_ms=converted,
                                dormant_ms=out.churned_ms, welcome_u=r.random(), nudge_u=r.random(),
                                since_ms=signup, until_ms=self.end)
        uid, anon = self.uid, self.anon[0]
        for campaign, ts in sends:
            ctx = self._ctx(0, ts)
            if campaign in MARKETING_CAMPAIGNS and not ctx["consent"]["marketing"]:
                continue
            email_id = short_hex(r.getrandbits, "em_")
            dormant = out.churned_ms is not None and ts >= out.churned_ms
            if r.random() >= open_probability(cfg, self.eng, dormant):
                continue
            opened = ts + open_delay_ms(r.random())
            props = {"campaign": campaign, "email_id": email_id}
            self.emit((opened, "email_opened", uid, anon, None, props, self._ctx(0, opened)))
            if r.random() < cfg.email_click_rate:
                clicked = opened + 3_000 + r.randrange(90_000)
                self.emit((clicked, "email_clicked", uid, anon, None,
                           {**props, "link": r.choice(EMAIL_LINKS[campaign])}, self._ctx(0, clicked)))
