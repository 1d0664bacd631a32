"""Flag documents: the real GrowthBook SDK, offline, serves exactly the variant each decision made."""

from __future__ import annotations

import json
import os
import random
import socket

import pytest
from growthbook import GrowthBook

from growth_loops.actuation import (
    ActuationError,
    HashExperiment,
    Rollback,
    UnitAssignments,
    build_features_document,
    document_hash,
    features_document_path,
    load_features_document,
    publish_features_document,
)

FLAG = "onboarding_variant"
VARIANTS = ("control", "short_tour", "checklist")


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Any connection attempt by the SDK fails the test: it must evaluate from the document alone."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _sdk(doc: dict, uid: str | None, **kwargs) -> GrowthBook:
    """The SDK as a product would run it offline: features passed in, no api_host/client_key (no network)."""
    attributes = {"id": uid} if uid is not None else {}
    return GrowthBook(attributes=attributes, features=doc["features"], **kwargs)


# -- an independent re-implementation of GrowthBook's hash v2 bucketing ---------------------------
def _fnv1a32(text: str) -> int:
    h = 0x811C9DC5
    data = text.encode("utf-16-le")  # JS charCodeAt: UTF-16 code units
    for i in range(0, len(data), 2):
        h ^= data[i] | (data[i + 1] << 8)
        h = (h * 0x01000193) % 2**32
    return h


def _bucket_v2(seed: str, unit: str) -> float:
    return (_fnv1a32(str(_fnv1a32(seed + unit))) % 10000) / 10000


def _expected_variation(unit: str, *, seed: str, weights: list[float], coverage: float) -> int | None:
    """The variation index a unit gets, None when outside the coverage."""
    n = _bucket_v2(seed, unit)
    start = 0.0
    for i, w in enumerate(weights):
        if start <= n < start + coverage * w:
            return i
        start += w
    return None


@pytest.fixture(scope="module")
def assignments() -> dict[str, str]:
    rng = random.Random(20261102)
    return {f"person-{i:05d}": rng.choice(VARIANTS) for i in range(2000)}


def test_unit_assignments_sdk_serves_every_decided_variant(assignments):
    doc = build_features_document([UnitAssignments(key=FLAG, default="control", assignments=assignments)])
    served = {uid: _sdk(doc, uid).get_feature_value(FLAG, "fallback") for uid in assignments}
    assert served == assignments
    assert _sdk(doc, "never-decided").get_feature_value(FLAG, "fallback") == "control"
    assert _sdk(doc, None).get_feature_value(FLAG, "fallback") == "control"  # no id attribute at all


def test_unit_assignments_document_shape_is_one_sorted_force_rule_per_variant(assignments):
    doc = build_features_document([UnitAssignments(key=FLAG, default="control", assignments=assignments,
                                                   decision_id="dec-42")])
    feature = doc["features"][FLAG]
    assert feature["defaultValue"] == "control"
    rules = feature["rules"]
    assert sorted(r["force"] for r in rules) == sorted(VARIANTS)
    for rule in rules:
        ids = rule["condition"]["id"]["$in"]
        assert ids == sorted(ids)
        assert set(ids) == {u for u, v in assignments.items() if v == rule["force"]}
        assert rule["id"].startswith("dec-42:unit:")
    assert sum(len(r["condition"]["id"]["$in"]) for r in rules) == len(assignments)


def test_unit_assignments_non_string_variants_and_rule_id_reported(assignments):
    decided = {uid: {"steps": len(v), "tour": v != "control"} for uid, v in list(assignments.items())[:300]}
    usage = []
    doc = build_features_document([UnitAssignments(key="tour_config", default={"steps": 0, "tour": False},
                                                   assignments=decided, decision_id="dec-7")])
    for uid, value in decided.items():
        gb = _sdk(doc, uid, on_feature_usage=lambda key, res, ctx: usage.append((key, res.source, res.ruleId)))
        assert gb.get_feature_value("tour_config", None) == value
    assert all(src == "force" and rule.startswith("dec-7:unit:") for _, src, rule in usage)


def test_documents_are_deterministic_whatever_the_input_order(assignments):
    shuffled = list(assignments.items())
    random.Random(3).shuffle(shuffled)
    a = build_features_document([UnitAssignments(key=FLAG, default="control", assignments=assignments),
                                 Rollback(key="paywall", default="old")])
    b = build_features_document([Rollback(key="paywall", default="old"),
                                 UnitAssignments(key=FLAG, default="control", assignments=dict(shuffled))])
    assert json.dumps(a) == json.dumps(b)
    assert document_hash(a) == document_hash(b)


def test_200k_ids_are_all_in_the_document():
    # Its build time is a benchmark's business (STYLE: no timed unit tests; a loaded CI machine varies).
    rng = random.Random(5)
    ids = [f"user-{i:07d}" for i in range(200_000)]
    rng.shuffle(ids)
    decided = {uid: rng.choice(VARIANTS) for uid in ids}
    doc = build_features_document([UnitAssignments(key=FLAG, default="control", assignments=decided)])
    digest = document_hash(doc)
    assert len(digest) == 64
    assert sum(len(r["condition"]["id"]["$in"]) for r in doc["features"][FLAG]["rules"]) == 200_000


EXPERIMENT = HashExperiment(key=FLAG, default="control", experiment_key="onboarding-2026-11",
                            variations=list(VARIANTS), weights=[0.5, 0.3, 0.2], coverage=0.8,
                            seed="onb-seed-1", variation_names=["Control", "Short tour", "Checklist"])


def test_experiment_rule_matches_independent_hash_v2_bucketing():
    doc = build_features_document([EXPERIMENT])
    rule = doc["features"][FLAG]["rules"][0]
    assert {k: rule[k] for k in ("key", "seed", "hashVersion", "hashAttribute", "coverage")} == {
        "key": "onboarding-2026-11", "seed": "onb-seed-1", "hashVersion": 2, "hashAttribute": "id", "coverage": 0.8}
    counts = [0, 0, 0]
    outside = 0
    for i in range(5000):
        uid = f"u{i}"
        expected = _expected_variation(uid, seed="onb-seed-1", weights=[0.5, 0.3, 0.2], coverage=0.8)
        value = _sdk(doc, uid).get_feature_value(FLAG, "fallback")
        if expected is None:
            outside += 1
            assert value == "control"  # the default, not an exposure
        else:
            counts[expected] += 1
            assert value == VARIANTS[expected], uid
    # the shares are what the weights and coverage say (4 sigma bounds on 5000 draws)
    assert abs(outside / 5000 - 0.2) < 0.025
    for share, count in zip([0.4, 0.24, 0.16], counts, strict=True):
        assert abs(count / 5000 - share) < 0.03


def test_experiment_exposures_reach_the_tracking_callback():
    doc = build_features_document([EXPERIMENT])
    exposures = []

    def on_viewed(*, experiment, result, user_context):
        exposures.append((user_context.attributes["id"], experiment.key, result.variationId, result.key,
                          result.name, result.hashUsed, result.inExperiment))

    expected = {}
    for i in range(500):
        uid = f"u{i}"
        gb = _sdk(doc, uid, on_experiment_viewed=on_viewed)
        gb.get_feature_value(FLAG, "fallback")
        gb.get_feature_value(FLAG, "fallback")  # a second evaluation is not a second exposure
        variation = _expected_variation(uid, seed="onb-seed-1", weights=[0.5, 0.3, 0.2], coverage=0.8)
        if variation is not None:
            expected[uid] = variation
    assert len(exposures) == len(expected)  # units outside the coverage are not exposed
    names = ["Control", "Short tour", "Checklist"]
    for uid, key, variation, vkey, name, hash_used, in_exp in exposures:
        assert key == "onboarding-2026-11" and hash_used and in_exp
        assert variation == expected[uid] and vkey == str(variation) and name == names[variation]


def test_force_rules_are_not_experiment_exposures(assignments):
    doc = build_features_document([UnitAssignments(key=FLAG, default="control", assignments=assignments)])
    exposures = []
    uid = next(iter(assignments))
    _sdk(doc, uid, on_experiment_viewed=lambda **kw: exposures.append(kw)).get_feature_value(FLAG, "x")
    assert exposures == []


def test_rollback_serves_control_to_everyone(assignments):
    doc = build_features_document([Rollback(key=FLAG, default="control", reason="guardrail: churn up")])
    assert doc["features"][FLAG]["rules"] == [{"id": f"{FLAG}:rollback", "force": "control"}]
    served = {_sdk(doc, uid).get_feature_value(FLAG, "fallback") for uid in [*assignments, "new-user"]}
    assert served == {"control"}
    assert _sdk(doc, None).get_feature_value(FLAG, "fallback") == "control"


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda: UnitAssignments(key="", default="a", assignments={}), "key"),
        (lambda: UnitAssignments(key="f f", default="a", assignments={}), "key"),
        (lambda: UnitAssignments(key="f", default=None, assignments={}), "null"),
        (lambda: UnitAssignments(key="f", default="a", assignments={"": "b"}), "unit id"),
        (lambda: UnitAssignments(key="f", default="a", assignments={7: "b"}), "unit id"),
        (lambda: UnitAssignments(key="f", default="a", assignments={"u": None}), "null"),
        (lambda: UnitAssignments(key="f", default="a", assignments={"u": float("nan")}), "JSON"),
        (lambda: UnitAssignments(key="f", default="a", assignments={"u": {1, 2}}), "JSON"),
        (lambda: HashExperiment(key="f", default="a", experiment_key="e", variations=["a"]), "at least two"),
        (lambda: HashExperiment(key="f", default="a", experiment_key="", variations=["a", "b"]), "experiment key"),
        (lambda: HashExperiment(key="f", default="a", experiment_key="e", variations=["a", "b"],
                                weights=[0.5]), "weights for"),
        (lambda: HashExperiment(key="f", default="a", experiment_key="e", variations=["a", "b"],
                                weights=[0.6, 0.6]), "sum"),
        (lambda: HashExperiment(key="f", default="a", experiment_key="e", variations=["a", "b"],
                                weights=[1.5, -0.5]), "non-negative"),
        (lambda: HashExperiment(key="f", default="a", experiment_key="e", variations=["a", "b"],
                                coverage=1.2), "coverage"),
        (lambda: HashExperiment(key="f", default="a", experiment_key="e", variations=["a", "b"],
                                variation_names=["A"]), "names"),
        (lambda: build_features_document([Rollback(key="f", default="a"), Rollback(key="f", default="b")]),
         "more than one"),
        (lambda: build_features_document([{"key": "f"}]), "not a flag decision"),
    ],
)
def test_malformed_decisions_are_refused(make, problem):
    with pytest.raises(ActuationError, match=problem):
        make()


def test_publish_returns_content_hash_and_detects_changes(tmp_path):
    path = features_document_path(tmp_path, "web")
    doc = build_features_document([EXPERIMENT])
    first = publish_features_document(doc, path)
    assert first == document_hash(doc)
    assert load_features_document(path) == json.loads(json.dumps(doc))
    mtime = os.stat(path).st_mtime_ns
    same = json.loads(json.dumps(doc))  # equal content, a different object (and key order irrelevant)
    assert publish_features_document(same, path) == first
    assert os.stat(path).st_mtime_ns == mtime  # unchanged content is not rewritten
    changed = build_features_document([Rollback(key=FLAG, default="control")])
    second = publish_features_document(changed, path)
    assert second != first
    assert load_features_document(path) == changed
    assert [p.name for p in (tmp_path / "actuation" / "flags").iterdir()] == ["web.json"]  # no temp files left


def test_publish_is_atomic_when_the_write_fails(tmp_path, monkeypatch):
    path = tmp_path / "flags" / "features.json"
    old = build_features_document([Rollback(key=FLAG, default="control")])
    publish_features_document(old, path)
    before = path.read_bytes()

    def broken_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        publish_features_document(build_features_document([EXPERIMENT]), path)
    assert path.read_bytes() == before  # readers still see the old document, whole
    assert [p.name for p in path.parent.iterdir()] == ["features.json"]  # the temp file was removed


def test_load_refuses_missing_or_foreign_files(tmp_path):
    with pytest.raises(ActuationError, match="does not exist"):
        load_features_document(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text('{"flags": {}}')
    with pytest.raises(ActuationError, match="not a GrowthBook document"):
        load_features_document(tmp_path / "bad.json")
    (tmp_path / "torn.json").write_text('{"features": {"a": ')
    with pytest.raises(ActuationError, match="not valid JSON"):
        load_features_document(tmp_path / "torn.json")


def test_the_global_holdout_gets_the_default_from_the_real_sdk():
    from growthbook import GrowthBook

    from growth_loops.actuation import HashExperiment, build_features_document
    from growth_loops.experiments import in_holdout

    doc = build_features_document([HashExperiment(
        key="onboarding_variant", default="control", experiment_key="onboarding", variations=["control", "guided"],
        weights=[0.0, 1.0], holdout_share=0.05)])
    ids = [f"usr_{i:05d}" for i in range(4000)]
    held = [uid for uid in ids if in_holdout(uid, share=0.05)]
    assert 120 < len(held) < 290
    for uid in ids:
        gb = GrowthBook(attributes={"id": uid}, features=doc["features"])
        expected = "control" if uid in held else "guided"
        assert gb.get_feature_value("onboarding_variant", "missing") == expected, uid
        gb.destroy()


def test_segmented_experiments_serve_each_context_its_own_weights_with_the_real_sdk():
    from growthbook import GrowthBook

    from growth_loops.actuation import HashExperiment, SegmentedExperiment, build_features_document

    def part(device, weights):
        return HashExperiment(key="onboarding_variant", default="control", experiment_key=f"onb:{device}",
                              seed="onb", variations=["control", "guided", "checklist"], weights=weights,
                              condition={"deviceType": device})

    doc = build_features_document([SegmentedExperiment(
        key="onboarding_variant", default="control",
        segments=[part("desktop", [0.0, 1.0, 0.0]), part("mobile", [0.0, 0.0, 1.0])])])
    seen = {}
    for i, device in enumerate(["desktop", "mobile", "tablet"] * 50):
        gb = GrowthBook(attributes={"id": f"u{i}", "deviceType": device}, features=doc["features"])
        seen.setdefault(device, set()).add(gb.get_feature_value("onboarding_variant", "missing"))
        gb.destroy()
    assert seen == {"desktop": {"guided"}, "mobile": {"checklist"}, "tablet": {"control"}}
