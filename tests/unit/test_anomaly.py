"""The anomaly gates against known shapes: outages, floods, client releases and shifted mixes trip
them; noise, stray faulty lines and young lakes do not."""

from __future__ import annotations

import numpy as np
import pytest

from expectations.anomaly import (
    distribution_verdict,
    load_config,
    psi_from_counts,
    quarantine_rate_verdict,
    schema_drift_verdict,
    volume_verdict,
)


def test_a_half_volume_hour_is_anomalous_and_normal_noise_is_not():
    rng = np.random.default_rng(1)
    history = rng.poisson(1000, 8).tolist()
    assert not volume_verdict(500, history).passed  # a collector losing half the events
    assert not volume_verdict(2600, history).passed  # a client flooding duplicates
    normal = [volume_verdict(int(rng.poisson(1000)), history).passed for _ in range(500)]
    assert all(normal)


def test_one_earlier_outlier_does_not_move_the_baseline():
    verdict = volume_verdict(480, [1000, 990, 1010, 20, 1005, 995])
    assert not verdict.passed and verdict.median == pytest.approx(997.5)


def test_a_new_lake_or_a_tiny_hour_is_not_judged_on_noise():
    assert volume_verdict(0, [1000, 1000]).passed  # two comparable hours: no baseline yet
    assert "not judged" in volume_verdict(0, [1000]).note
    assert volume_verdict(9, [3, 4, 2, 5, 3]).passed  # tiny counts: the change floor and scale floor hold
    with pytest.raises(ValueError):
        volume_verdict(1, [1, 2, 3, 4], threshold=0)



@pytest.mark.parametrize(("value", "history", "passed", "why"), [
    (1024, [490, 578, 554, 300], True, "a quiet Sunday hour of a growing lake doubling: sessions come in bursts"),
    (783, [491, 481, 386, 387], True, "the same at 23:00"),
    (20, [490, 578, 554, 300], False, "an outage: 2% of the lines"),
    (5120, [490, 578, 554, 300], False, "a flood: 5x the lines"),
    (91, [5168, 3768, 2730, 884], False, "an outage in a busy hour of a lake still ramping up"),
    (100, [200, 201, 202, 203, 204], False, "half of a steady 200-line hour: below the median, the Poisson floor"),
])
def test_volume_is_judged_on_the_log_scale_of_a_bursty_count(value, history, passed, why):
    # figures from benchmarks/bench_gates.py's five-week lake (6,000 users, seed 3, from 2026-06-01)
    assert volume_verdict(value, history).passed is passed, why

# -- schema drift ------------------------------------------------------------------------------------

PLANNED = {"page_viewed": {"path", "referrer"}, "signup": {"plan"}}
BASE_LINES = {"page_viewed": 1000, "signup": 200}
BASE_PROPS = {"page_viewed.path": 1000, "page_viewed.referrer": 600, "signup.plan": 200}


def test_an_unplanned_property_on_a_share_of_lines_is_drift_a_stray_one_is_not():
    stray = schema_drift_verdict({"page_viewed": 100}, {"page_viewed.path": 100, "page_viewed.referrer": 55,
                                                         "page_viewed.coupon": 2},
                                 PLANNED, BASE_LINES, BASE_PROPS)
    assert stray.passed, stray.note  # 2 faulty lines: quarantined one by one, not a release
    release = schema_drift_verdict({"page_viewed": 100}, {"page_viewed.path": 100, "page_viewed.referrer": 55,
                                                           "page_viewed.coupon": 30},
                                   PLANNED, BASE_LINES, BASE_PROPS)
    assert not release.passed
    assert release.findings == ("unplanned property page_viewed.coupon on 30 of 100 page_viewed lines (30%)",)


def test_a_planned_property_gone_missing_is_drift_a_rarely_sent_one_is_not():
    now_lines = {"page_viewed": 100, "signup": 40}
    gone = schema_drift_verdict(now_lines, {"page_viewed.path": 10, "page_viewed.referrer": 60, "signup.plan": 40},
                                PLANNED, BASE_LINES, BASE_PROPS)
    assert not gone.passed and "property page_viewed.path on 10%" in gone.note and "100% in the baseline" in gone.note
    # referrer: 60% before, 30% now = half of its share: at the threshold, not below it
    fine = schema_drift_verdict(now_lines, {"page_viewed.path": 100, "page_viewed.referrer": 30, "signup.plan": 40},
                                PLANNED, BASE_LINES, BASE_PROPS)
    assert fine.passed, fine.note
    young = schema_drift_verdict(now_lines, {"page_viewed.path": 10}, PLANNED, {"page_viewed": 50}, {})
    assert young.passed  # a baseline of 50 lines judges nothing missing


def test_a_small_hour_that_carries_a_property_less_often_by_chance_is_not_drift():
    """20 sign-ups, 7 with a referrer, against 71% in the baseline: below half the share, but an hour of
    20 lines does that about once in 1,100 hours (a false alarm a day at a few hundred judged hours);
    none of 20, or a third of 100, is a release that stopped sending it."""
    planned, base_lines, base_props = {"signup": {"referrer"}}, {"signup": 1000}, {"signup.referrer": 710}
    chance = schema_drift_verdict({"signup": 20}, {"signup.referrer": 7}, planned, base_lines, base_props)
    assert chance.passed, chance.note
    for lines, carrying in ((20, 0), (100, 33)):
        gone = schema_drift_verdict({"signup": lines}, {"signup.referrer": carrying}, planned, base_lines, base_props)
        assert not gone.passed and "property signup.referrer on" in gone.note, (lines, carrying)


# -- distribution drift -----------------------------------------------------------------------------

def test_psi_is_zero_for_equal_mixes_and_large_for_a_takeover():
    assert psi_from_counts([50, 30, 20], [500, 300, 200]) == pytest.approx(0.0, abs=1e-12)
    assert psi_from_counts([50, 30, 20], [0, 100, 0]) > 2


BASE = {"device_type": {"desktop": 3000, "mobile": 2500, "tablet": 500, "tv": 20}}


def test_a_shifted_key_column_is_drift_sampling_noise_is_not():
    noise = distribution_verdict({"device_type": {"desktop": 260, "mobile": 190, "tablet": 50}}, BASE,
                                 n_history_hours=48)
    assert noise.passed and noise.judged["device_type"] < 0.05
    shifted = distribution_verdict({"device_type": {"mobile": 500}}, BASE, n_history_hours=48)
    assert not shifted.passed
    assert "device_type shifted" in shifted.note and "'mobile' is 100% of the hour, 42% before" in shifted.note


def test_a_large_psi_on_few_people_or_a_rare_value_is_not_drift():
    few = {"device_type": {"desktop": 12, "mobile": 14, "tablet": 9}}  # PSI ~0.3 by chance on 35 people
    verdict = distribution_verdict(few, BASE, n_history_hours=48)
    assert verdict.judged["device_type"] > 0.25 and verdict.passed  # not significant
    rare = {"device_type": {"desktop": 250, "mobile": 210, "tablet": 40, "tv": 3, "fridge": 1}}
    assert distribution_verdict(rare, BASE, n_history_hours=48).passed  # pooled as "(other)"
    flood = {"device_type": {"desktop": 250, "mobile": 200, "fridge": 300}}
    assert not distribution_verdict(flood, BASE, n_history_hours=48).passed  # a new value takes a third


def test_a_quiet_hour_is_held_to_a_takeover():
    # 2026-03-09-00:00 of the clean lake: 32 people, PSI 0.67 against its baseline, p 2e-8
    quiet = {"device_type": {"desktop": 8, "mobile": 15, "tablet": 9}}
    config = load_config()["distribution_drift"]
    verdict = distribution_verdict(quiet, BASE, n_history_hours=48, **config)
    assert verdict.passed and verdict.judged["device_type"] > config["psi_threshold"]  # above 0.25, below 1.0
    takeover = {"device_type": {"mobile": 40}}  # every event of a quiet hour from an iPhone
    verdict = distribution_verdict(takeover, BASE, n_history_hours=48, **config)
    assert not verdict.passed and "> 1" in verdict.note

def test_distribution_is_not_judged_without_history_or_units():
    shifted = {"device_type": {"mobile": 500}}
    assert distribution_verdict(shifted, BASE, n_history_hours=3).passed  # young lake: too few hours
    assert distribution_verdict(shifted, {"device_type": {"desktop": 100}}, n_history_hours=48).passed  # thin baseline
    assert distribution_verdict({"device_type": {"mobile": 20}}, BASE, n_history_hours=48).passed  # a quiet hour


def test_thresholds_come_from_the_yaml_and_an_override_file(tmp_path, monkeypatch):
    assert load_config()["distribution_drift"]["psi_threshold"] == 0.25
    override = tmp_path / "gates.yaml"
    override.write_text("volume:\n  min_history: 2\n")
    monkeypatch.setenv("GROWTHLAKE_ANOMALY_CONFIG", str(override))
    config = load_config()
    assert config["volume"]["min_history"] == 2 and config["volume"]["threshold"] == 4.0  # merged key by key
    override.write_text("volumes:\n  min_history: 2\n")
    with pytest.raises(ValueError, match="unknown gate"):
        load_config()


# -- quarantine rate -------------------------------------------------------------------------------

def _clean_history(rng, hours: int = 21, lines: int = 400, rate: float = 0.012) -> dict[str, list[tuple[int, int]]]:
    return {"all": [(int(rng.binomial(lines, rate)), lines) for _ in range(hours)],
            "event:page_viewed": [(int(rng.binomial(lines // 2, rate)), lines // 2) for _ in range(hours)]}


def test_a_retyped_release_trips_the_quarantine_rate_and_names_the_violation():
    history = _clean_history(np.random.default_rng(3))
    now = {"all": (192, 368), "event:page_viewed": (2, 150), "event:payment_succeeded": (150, 160)}
    violations = {("datatype_mismatch", "payment_succeeded", "sim-*.jsonl"): 150,
                  ("datatype_mismatch", "signup_completed", "sim-*.jsonl"): 40,
                  ("malformed_json", "", "sim-*.jsonl"): 2}
    verdict = quarantine_rate_verdict(now, history, violations, **load_config()["quarantine_rate"])
    assert not verdict.passed
    # page_viewed is within its band; payment_succeeded has no history, but 94% is above the young-lake band
    assert [s.scope for s in verdict.failing] == ["all", "event:payment_succeeded"]
    assert "datatype_mismatch on payment_succeeded from sim-*.jsonl ×150" in verdict.note
    meta = verdict.to_metadata()
    assert meta["share"] == pytest.approx(192 / 368, abs=1e-4) and meta["history_hours"] == 21
    assert meta["band_upper"] < 0.1


def test_clean_hours_pass_the_quarantine_rate():
    rng = np.random.default_rng(4)
    history = _clean_history(rng)
    cfg = load_config()["quarantine_rate"]
    for _ in range(2000):
        lines = int(rng.integers(50, 2000))
        now = {"all": (int(rng.binomial(lines, 0.012)), lines)}
        assert quarantine_rate_verdict(now, history, {}, **cfg).passed


@pytest.mark.parametrize(("quarantined", "lines", "passed", "why"), [
    (30, 100, True, "young lake: 30% is below the fixed band of 50%"),
    (60, 100, False, "young lake: 60% is an extreme share"),
    (40, 40, True, "too few lines to judge"),
])
def test_a_young_lake_fails_only_an_extreme_share(quarantined, lines, passed, why):
    verdict = quarantine_rate_verdict({"all": (quarantined, lines)}, {"all": [(1, 100)] * 3}, {},
                                      **load_config()["quarantine_rate"])
    assert verdict.passed is passed, why


def test_a_few_more_faulty_lines_in_a_small_hour_are_not_an_alarm():
    history = {"all": [(0, 60)] * 10 + [(1, 60)] * 4}  # median 0, MAD 0
    cfg = load_config()["quarantine_rate"]
    assert quarantine_rate_verdict({"all": (4, 60)}, history, {}, **cfg).passed  # 6.7%: chance at n=60
    assert not quarantine_rate_verdict({"all": (30, 60)}, history, {}, **cfg).passed
