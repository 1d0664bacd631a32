"""The growth loops of the playbook, declared and implemented in one place.

* ``onboarding`` — a contextual bandit (linear Thompson sampling on the device type) over
  onboarding variants (flag ``onboarding_variant``, one experiment rule per device), rewarded
  when a new person completes all five onboarding steps; a greedy candidate policy is promoted
  only when off-policy evaluation says it beats the bandit;
* ``trial_nudge`` — a randomized experiment: people whose trial ends within 3 days get a
  ``trial_nudge`` email (treatment) or nothing (control); measured on conversion;
* ``paywall`` — an in-app paywall variant tested against control, rolled back when revenue per
  active person on the day of exposure drops beyond the tolerated 2%;
* ``churn_prevention`` — a risk score (logistic regression on features, a rule until there is
  enough history) picks paying people at risk; 80% of them get a ``retention_offer``.

Every loop leaves the global holdout alone and acts only on people with the consent it needs.
Every loop declares guardrails on the OEC — revenue per active user and d7 retention, metrics of
the metric layer — in its spec; the runtime measures them on the units each loop reports
(``Loop.units``) and every outcome a loop reads comes from the metric layer too.
"""

from __future__ import annotations

import datetime
import json
from typing import Any

import numpy as np
import polars as pl

from growth_loops.actuation import HashExperiment, OutboxMessage, SegmentedExperiment
from growth_loops.bandits import LinearThompson, evaluate_candidate, on_policy_value, should_promote
from growth_loops.experiments import analyze, assign_many, in_holdout_many, srm_test
from growth_loops.loops.data import exposures
from growth_loops.loops.runtime import DayContext, Loop, LoopSettings, Mode, Outcome
from growth_loops.loops.spec import ApprovalPolicy, Budget, Guardrail, LoopSpec
from growth_loops.metrics import unit_values

__all__ = ["ChurnPrevention", "OnboardingBandit", "PaywallTest", "TrialNudge", "default_loops"]

_DAY = datetime.timedelta(days=1)


def _oec_guardrails(*, revenue_drop: float, revenue_window_days: int | None = None,
                    retention_drop: float = 0.05) -> tuple[Guardrail, ...]:
    """The OEC guardrails every loop declares: revenue per active user and d7 retention."""
    return (Guardrail(metric="revenue_per_active_user", max_relative_drop=revenue_drop,
                      window_days=revenue_window_days),
            Guardrail(metric="retention_d7", max_relative_drop=retention_drop))


def _outcomes(ctx: DayContext, units: pl.DataFrame, metric: str, *, window_days: int | None = None,
              since: datetime.date | None = None) -> pl.DataFrame:
    """``units`` (``person_id``, ``start_at``) with ``value``: the metric layer's ``metric`` per unit."""
    layer = ctx.metric_layer
    events = ctx.evidence_events() if since is None else ctx.events(since)
    return unit_values(units, events, layer.metric(metric).with_window(window_days), layer)


def _exposed_units(ctx: DayContext, spec: LoopSpec, experiment_prefix: str) -> pl.DataFrame:
    """Exposures to the loop's flag as guardrail units: control variant vs every other variant."""
    seen = exposures(ctx.evidence_events(), spec.target).filter(
        pl.col("experiment_id").str.starts_with(experiment_prefix))
    return seen.select("person_id", pl.when(pl.col("variation_id") == spec.control).then(pl.lit("control"))
                       .otherwise(pl.lit("treatment")).alias("arm"), pl.col("exposed_at").alias("start_at"))


def _eligible(ctx: DayContext, frame: pl.DataFrame, *, needs_marketing: bool) -> pl.DataFrame:
    """Drop the global holdout (and, for messages, people without marketing consent)."""
    s = ctx.settings
    if frame.is_empty():
        return frame
    keep = ~pl.Series(in_holdout_many(frame["person_id"], seed=s.holdout_seed, share=s.holdout_share))
    frame = frame.filter(keep) if s.holdout_share > 0 else frame
    if needs_marketing:
        marketing = ctx.features("user_marketing").filter(pl.col("emails_opened_28d").is_not_null())
        frame = frame.join(marketing.select("person_id"), on="person_id", how="semi")
    return frame


def _canary(ctx: DayContext, frame: pl.DataFrame, loop: str, mode: Mode) -> pl.DataFrame:
    if mode == "full" or frame.is_empty():
        return frame
    share = ctx.settings.canary_share
    arm = assign_many(frame["person_id"], seed=f"{loop}-canary", weights=[share, 1 - share])
    return frame.filter(pl.Series(arm == 0))


def _results(experiment: str, metric: str, control: np.ndarray, treatment: np.ndarray, weights: list[float],
             *, pre: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, Any] | None:
    if min(control.size, treatment.size) < 2:
        return None
    srm = srm_test([control.size, treatment.size], weights)
    res = analyze(control.astype(float), treatment.astype(float), metric=metric,
                  pre_control=None if pre is None else pre[0], pre_treatment=None if pre is None else pre[1])
    return {"experiment": experiment, "metric": metric, "n_control": int(control.size),
            "n_treatment": int(treatment.size), "srm_p_value": float(srm.p_value), "srm_flagged": bool(srm.flagged),
            "record": json.dumps(res.to_record(), default=float)}


class OnboardingBandit(Loop):
    """A contextual bandit over onboarding variants: linear Thompson sampling on the sign-up's
    device type, actuated as one GrowthBook experiment rule per device whose weights are the
    policy's arm probabilities for that context (the propensities of the day's sign-ups)."""

    spec = LoopSpec(
        name="onboarding", description="Personalize onboarding: send each sign-up to the variant that completes "
                                       "best for its context (device type).",
        owner="growth-activation", inputs=("user_features.onboarding_steps_completed",), policy="contextual_bandit",
        actuation="feature_flag", target="onboarding_variant", variants=("control", "guided", "checklist"),
        control="control", feedback_metric="onboarding_completed",
        guardrails=_oec_guardrails(revenue_drop=0.05),
        approval=ApprovalPolicy(mode="auto", stable_days=2), cadence="nightly",
    )
    version = "lints-v1"
    experiment = "onboarding-bandit"
    segments = ("desktop", "mobile", "tablet")  # the context: device type at sign-up (SDK attribute deviceType)
    min_share = 0.05
    lookback_days = 60

    def _contexts(self, devices: list[str]) -> np.ndarray:
        index = {d: i for i, d in enumerate(self.segments)}
        out = np.zeros((len(devices), len(self.segments)))
        for row, device in enumerate(devices):
            if device in index:
                out[row, index[device]] = 1.0
        return out

    def decide(self, ctx: DayContext, mode: Mode) -> Outcome:
        arms = list(self.spec.variants)
        logged = self._logged(ctx)
        policy = LinearThompson.new(arms, len(self.segments), fit_intercept=False, min_share=self.min_share,
                                    draws=4_000)
        if not logged.is_empty():
            policy = policy.update(self._contexts(logged["device_type"].to_list()), logged["arm"].to_numpy(),
                                   logged["reward"].to_numpy())
        segments = self._contexts(list(self.segments))
        rng = np.random.default_rng(ctx.rng_seed(self.spec.name))
        weights = policy.policy_probabilities(segments, rng)
        promoted = any(v.endswith("+greedy") for v in ctx.runs(self.spec.name)["policy_version"].to_list())
        means = policy.expected_rewards(segments)
        evidence: dict[str, Any] = {"expected_completion": {d: dict(zip(arms, means[i].round(4).tolist(), strict=True))
                                                            for i, d in enumerate(self.segments)},
                                    "logged_units": logged.height}
        ope = self._ope(logged, policy)
        if ope is not None:
            evidence["ope"] = ope
            if not promoted and ope["promote"]:
                promoted = True
                evidence["promotion"] = f"greedy contextual policy promoted: {ope['reason']}"
        if promoted:
            weights = policy.greedy_policy(segments, min_share=self.min_share)
        parts, decisions = [], []
        for i, device in enumerate(self.segments):
            w = np.round(weights[i] / weights[i].sum(), 6)
            w[-1] = round(1.0 - float(w[:-1].sum()), 6)
            parts.append(HashExperiment(
                key=self.spec.target, default=self.spec.control, experiment_key=f"{self.experiment}:{device}",
                seed=self.experiment, variations=arms, weights=w.tolist(), condition={"deviceType": device},
                coverage=1.0 if mode == "full" else ctx.settings.canary_share))
            decisions += [{"person_id": None, "action": f"{device}:{arm}", "propensity": float(p)}
                          for arm, p in zip(arms, w, strict=True)]
        flag = SegmentedExperiment(key=self.spec.target, default=self.spec.control, segments=parts,
                                   holdout_share=ctx.settings.holdout_share, holdout_seed=ctx.settings.holdout_seed,
                                   decision_id=f"onboarding-{ctx.day.isoformat()}")
        results = []
        for device in self.segments:
            mine = logged.filter(pl.col("device_type") == device)
            best = int(np.argmax(means[self.segments.index(device)]))
            if best != 0 and not mine.is_empty():
                row = _results(f"{self.experiment}:{device}", "onboarding_completed",
                               mine.filter(pl.col("arm") == 0)["reward"].to_numpy(),
                               mine.filter(pl.col("arm") == best)["reward"].to_numpy(), [0.5, 0.5])
                if row is not None:
                    row["srm_p_value"], row["srm_flagged"] = None, None  # adaptive weights: SRM does not apply
                    results.append(row)
        return Outcome(flag=flag, decisions=decisions, results=results, evidence=evidence,
                       policy_version=f"{self.version}+greedy" if promoted else self.version)

    def _logged(self, ctx: DayContext) -> pl.DataFrame:
        """Exposures with their context, arm, propensity (the weight in force that day) and reward
        (the metric layer's ``onboarding_completed`` on the day of the exposure)."""
        empty = pl.DataFrame(schema={"device_type": pl.String, "arm": pl.Int64, "propensity": pl.Float64,
                                     "reward": pl.Float64})
        events = ctx.events(ctx.day - datetime.timedelta(days=self.lookback_days))
        seen = exposures(events, self.spec.target).filter(pl.col("experiment_id").str.starts_with(self.experiment))
        if seen.is_empty():
            return empty
        seen = seen.with_columns(pl.col("exposed_at").dt.date().alias("exposed_day"),
                                 pl.col("experiment_id").str.split(":").list.last().alias("segment"))
        decisions = ctx.decisions(self.spec.name).filter(pl.col("person_id").is_null()).select(
            (pl.col("day") + pl.duration(days=1)).alias("exposed_day"),
            pl.col("action").str.split(":").list.first().alias("segment"),
            pl.col("action").str.split(":").list.last().alias("variation_id"), "propensity")
        arm_index = {a: i for i, a in enumerate(self.spec.variants)}
        logged = seen.join(decisions, on=["exposed_day", "segment", "variation_id"], how="inner")
        rewarded = _outcomes(ctx, logged.with_columns(pl.col("exposed_at").alias("start_at")), "onboarding_completed",
                             since=ctx.day - datetime.timedelta(days=self.lookback_days))
        return (
            rewarded.with_columns(pl.col("variation_id").replace_strict(arm_index, return_dtype=pl.Int64).alias("arm"),
                                  pl.col("segment").alias("device_type"), pl.col("value").alias("reward"))
            .select("device_type", "arm", "propensity", "reward")
        )

    def units(self, ctx: DayContext) -> pl.DataFrame:
        """Sign-ups exposed to the bandit's rules: the control arm against the other variants."""
        return _exposed_units(ctx, self.spec, self.experiment)

    def _ope(self, logged: pl.DataFrame, policy: LinearThompson) -> dict[str, Any] | None:
        """Would the greedy contextual policy beat the running one on the logged data?"""
        if logged.height < 300:
            return None
        contexts = self._contexts(logged["device_type"].to_list())
        candidate = policy.greedy_policy(contexts, min_share=self.min_share)
        est = evaluate_candidate(logged["arm"].to_numpy(), logged["propensity"].to_numpy(),
                                 logged["reward"].to_numpy(), candidate, policy.expected_rewards(contexts))
        current = on_policy_value(logged["reward"].to_numpy())
        verdict = should_promote(est["dr"], current, min_lift=0.0, require="ci", min_effective_sample_size=100)
        return {"ips": est["ips"].value, "snips": est["snips"].value, "dr": est["dr"].value,
                "dr_ci": [est["dr"].ci_low, est["dr"].ci_high], "current": current.value,
                "promote": bool(verdict.promote), "reason": verdict.reason}


class TrialNudge(Loop):
    """A randomized experiment: a nudge email in the last days of a trial, against none."""

    spec = LoopSpec(
        name="trial_nudge", description="Nudge trials that end soon to convert; measure the lift on conversion.",
        owner="growth-monetization",
        inputs=("user_features.plan", "user_features.trial_days_left", "user_marketing.emails_opened_28d",
                "user_features.events_28d"),
        policy="experiment", actuation="message", target="trial_nudge", variants=("control", "trial_nudge"),
        control="control", feedback_metric="converted", guardrails=_oec_guardrails(revenue_drop=0.05),
        approval=ApprovalPolicy(mode="human"),
    )
    version = "exp-v1"
    experiment = "trial-nudge-exp-v1"
    weights = (0.5, 0.5)
    outcome_days = 7

    def decide(self, ctx: DayContext, mode: Mode) -> Outcome:
        earlier = ctx.decisions(self.spec.name).filter(pl.col("person_id").is_not_null() & pl.col("actuated"))
        due = ctx.features("user_features").filter(
            (pl.col("plan") == "trial") & pl.col("trial_days_left").is_between(1, 3))
        due = due.join(earlier.select("person_id"), on="person_id", how="anti")
        due = _canary(ctx, _eligible(ctx, due, needs_marketing=True), self.spec.name, mode)
        arms: np.ndarray | list[int] = (assign_many(due["person_id"], seed=self.experiment, weights=list(self.weights))
                                        if due.height else [])
        decisions, messages = [], []
        for person, arm in zip(due["person_id"].to_list(), list(arms), strict=True):
            action = self.spec.variants[int(arm)]
            decisions.append({"person_id": person, "action": action, "propensity": self.weights[int(arm)]})
            if action == "trial_nudge":
                messages.append(OutboxMessage(loop=self.spec.name, decision_id=f"{self.experiment}:{person}",
                                              decision_day=ctx.day, person_id=person, template="trial_nudge",
                                              payload={"experiment": self.experiment}))
        return Outcome(decisions=decisions, messages=messages, results=self._analysis(ctx, earlier),
                       evidence={"eligible": due.height})

    def _analysis(self, ctx: DayContext, earlier: pl.DataFrame) -> list[dict[str, Any]]:
        units = earlier.filter(pl.col("day") <= ctx.day - datetime.timedelta(days=self.outcome_days))
        if units.height < 4:
            return []
        first = units["day"].min()
        assert isinstance(first, datetime.date)  # of at least 4 units
        units = units.with_columns(
            (pl.col("day").cast(pl.Datetime("us", "UTC")) + pl.duration(days=1)).alias("start_at"))
        out = _outcomes(ctx, units, "converted", window_days=self.outcome_days, since=first)
        pre = ctx.features("user_features", days=sorted(set(units["day"].to_list()))).select(
            "person_id", "day", pl.col("events_28d").cast(pl.Float64))
        out = out.join(pre, on=["person_id", "day"], how="left").with_columns(pl.col("events_28d").fill_null(0.0))
        c, t = out.filter(pl.col("action") == "control"), out.filter(pl.col("action") == "trial_nudge")
        row = _results(self.experiment, "converted", c["value"].to_numpy(), t["value"].to_numpy(),
                       list(self.weights), pre=(c["events_28d"].to_numpy(), t["events_28d"].to_numpy()))
        return [row] if row else []


class PaywallTest(Loop):
    """An in-app paywall variant against control, guarded by revenue per active person on the day of exposure."""

    spec = LoopSpec(
        name="paywall", description="Test a discount pop-up on the paywall; never at the cost of revenue.",
        owner="growth-monetization", inputs=("user_features.plan",), policy="experiment", actuation="in_app_variant",
        target="paywall_variant", variants=("control", "discount_popup"), control="control",
        feedback_metric="converted",
        # Revenue is measured on the day of the exposure, when the paywall converts or not.
        guardrails=_oec_guardrails(revenue_drop=0.02, revenue_window_days=1),
        approval=ApprovalPolicy(mode="human"),
    )
    version = "exp-v1"
    experiment = "paywall-exp-v1"
    weights = (0.5, 0.5)

    def units(self, ctx: DayContext) -> pl.DataFrame:
        """People exposed to the paywall experiment: control against the discount pop-up."""
        return _exposed_units(ctx, self.spec, self.experiment)

    def decide(self, ctx: DayContext, mode: Mode) -> Outcome:
        seen = exposures(ctx.evidence_events(), self.spec.target).filter(pl.col("experiment_id") == self.experiment)
        units = seen.with_columns(pl.col("exposed_at").alias("start_at"))
        results = []
        for metric, name in (("converted", "converted"), ("revenue_per_user", "revenue")):
            out = _outcomes(ctx, units, metric, window_days=1)
            ca, ta = (out.filter(pl.col("variation_id") == v)["value"].to_numpy() for v in self.spec.variants)
            row = _results(self.experiment, name, ca, ta, list(self.weights))
            if row:
                results.append(row)
        flag = HashExperiment(
            key=self.spec.target, default=self.spec.control, experiment_key=self.experiment, seed=self.experiment,
            variations=list(self.spec.variants), weights=list(self.weights),
            coverage=1.0 if mode == "full" else ctx.settings.canary_share,
            holdout_share=ctx.settings.holdout_share, holdout_seed=ctx.settings.holdout_seed,
            decision_id=f"paywall-{self.version}")
        decisions = [{"person_id": None, "action": v, "propensity": w}
                     for v, w in zip(self.spec.variants, self.weights, strict=True)]
        return Outcome(flag=flag, decisions=decisions, results=results, evidence={"exposed": units.height})


class ChurnPrevention(Loop):
    """Score paying people's risk of cancelling; offer a retention deal to the riskiest (80%, randomized)."""

    spec = LoopSpec(
        name="churn_prevention", description="Keep paying customers: a retention offer to those likely to cancel.",
        owner="growth-retention",
        inputs=("user_features.plan", "user_features.days_since_last_seen", "user_features.events_7d",
                "user_features.events_28d", "user_features.active_days_28d", "user_marketing.emails_opened_28d"),
        policy="scored_model", actuation="message", target="retention_offer", variants=("control", "retention_offer"),
        control="control", feedback_metric="cancelled",
        guardrails=_oec_guardrails(revenue_drop=0.05, revenue_window_days=14),
        approval=ApprovalPolicy(mode="auto", stable_days=2),
        budget=Budget(action="retention_offer", max_per_day=200),  # a discount each: at most 200 a day
    )
    version = "risk-v1"
    experiment = "churn-offer-v1"
    weights = (0.2, 0.8)
    horizon_days = 14
    top_share = 0.25
    _columns = ("events_7d", "events_28d", "days_since_last_seen", "active_days_28d")

    def decide(self, ctx: DayContext, mode: Mode) -> Outcome:
        recent = ctx.decisions(self.spec.name, since=ctx.day - datetime.timedelta(days=self.horizon_days))
        paying = ctx.features("user_features").filter(pl.col("plan").is_in(["pro", "team"]))
        paying = paying.join(recent.filter(pl.col("person_id").is_not_null()).select("person_id"),
                             on="person_id", how="anti")
        paying = _eligible(ctx, paying, needs_marketing=True)
        model, how = self._model(ctx)
        scores = self._score(paying, model)
        evidence: dict[str, Any] = {"scorer": how, "scored": paying.height}
        if paying.is_empty():
            return Outcome(evidence=evidence, results=self._analysis(ctx))
        cut = float(np.quantile(scores, 1 - self.top_share))
        risky = _canary(ctx, paying.filter(pl.Series(scores >= cut) & pl.Series(scores > 0)), self.spec.name, mode)
        arms: np.ndarray | list[int] = (assign_many(risky["person_id"], seed=self.experiment,
                                                    weights=list(self.weights)) if risky.height else [])
        decisions, messages = [], []
        for person, arm in zip(risky["person_id"].to_list(), list(arms), strict=True):
            action = self.spec.variants[int(arm)]
            decisions.append({"person_id": person, "action": action, "propensity": self.weights[int(arm)]})
            if action == "retention_offer":
                messages.append(OutboxMessage(loop=self.spec.name, decision_id=f"{self.experiment}:{person}",
                                              decision_day=ctx.day, person_id=person, template="retention_offer",
                                              payload={"scorer": how}))
        return Outcome(decisions=decisions, messages=messages, evidence=evidence, results=self._analysis(ctx))

    def _matrix(self, frame: pl.DataFrame) -> np.ndarray:
        x = frame.select([pl.col(c).cast(pl.Float64).fill_null(0.0) for c in self._columns]).to_numpy()
        return np.column_stack([np.ones(len(x)), x / np.array([50.0, 200.0, 28.0, 28.0])])

    def _score(self, frame: pl.DataFrame, model: np.ndarray | None) -> np.ndarray:
        if frame.is_empty():
            return np.zeros(0)
        if model is None:  # the rule: inactive for 3+ days, more so the longer and the less active before
            days = frame["days_since_last_seen"].fill_null(0).to_numpy().astype(float)
            active = frame["active_days_28d"].fill_null(0).to_numpy().astype(float)
            return np.where(days >= 3, days / 28.0 + (1 - active / 28.0), 0.0)
        return 1.0 / (1.0 + np.exp(-self._matrix(frame) @ model))

    def _model(self, ctx: DayContext) -> tuple[np.ndarray | None, str]:
        """Logistic regression on (features of day D-14, cancelled within 14 days), if enough labels."""
        past = ctx.day - datetime.timedelta(days=self.horizon_days)
        train = ctx.features("user_features", days=[past]).filter(pl.col("plan").is_in(["pro", "team"]))
        if train.height < 200:
            return None, f"rule (only {train.height} labelled paying people)"
        cancels = ctx.events(past + _DAY).filter(pl.col("event_name") == "subscription_cancelled")
        y = train["person_id"].is_in(cancels["person_id"].unique().implode()).to_numpy().astype(float)
        if y.sum() < 20 or y.sum() > len(y) - 20:
            return None, f"rule ({int(y.sum())} cancellations among {len(y)} is too few to fit)"
        x = self._matrix(train)
        w = np.zeros(x.shape[1])
        for _ in range(25):  # Newton steps of a ridge-penalized logistic regression
            p = 1.0 / (1.0 + np.exp(-x @ w))
            grad = x.T @ (p - y) + 1.0 * w
            hess = (x * (p * (1 - p))[:, None]).T @ x + np.eye(len(w))
            w -= np.linalg.solve(hess, grad)
        return w, f"logistic regression on {len(y)} people ({int(y.sum())} cancelled)"

    def _analysis(self, ctx: DayContext) -> list[dict[str, Any]]:
        units = ctx.decisions(self.spec.name).filter(
            pl.col("person_id").is_not_null() & pl.col("actuated")
            & (pl.col("day") <= ctx.day - datetime.timedelta(days=self.horizon_days)))
        if units.height < 4:
            return []
        units = units.with_columns(
            (pl.col("day").cast(pl.Datetime("us", "UTC")) + pl.duration(days=1)).alias("start_at"))
        first = units["day"].min()
        assert isinstance(first, datetime.date)  # of at least 4 units
        out = _outcomes(ctx, units, "cancelled", window_days=self.horizon_days, since=first)
        c, t = (out.filter(pl.col("action") == v) for v in self.spec.variants)
        row = _results(self.experiment, "cancelled", c["value"].to_numpy(), t["value"].to_numpy(),
                       list(self.weights))
        return [row] if row else []


def default_loops(settings: LoopSettings | None = None) -> list[Loop]:
    """Every loop, in the order they run."""
    return [OnboardingBandit(), TrialNudge(), PaywallTest(), ChurnPrevention()]
