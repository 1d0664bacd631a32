"""The anomaly gates against known shapes: outages, floods, client releases and shifted mixes trip
them; noise, stray faulty lines and young lakes do not."""

from __future__ import annotations

import numpy as np
import pytest

from expectations.anomaly import (
    distribution_verdict,
    load_config,
    psi_from_counts,
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
