"""The volume anomaly test against known shapes: outages and floods trip it, noise and new lakes do not."""

from __future__ import annotations

import numpy as np
import pytest

from expectations.anomaly import volume_verdict


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
