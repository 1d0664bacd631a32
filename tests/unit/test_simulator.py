"""The product simulator, judged only by the files it lands (re-read independently of its counters)."""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from lake.errors import ConfigError
from simulation import FAULT_KINDS, SimulatorConfig, simulate

PLAN_PATH = Path(__file__).resolve().parents[2] / "lake" / "contracts" / "tracking_plan.yaml"
START = date(2026, 11, 4)  # a Wednesday: both weekends of a 14-day run have a Friday and a Monday around them
ARGS = dict(users=400, days=14, seed=11, start=START, fault_rate=0.05, analytics_consent_rate=0.9)
ENVELOPE = {"event_id", "event_name", "timestamp", "received_at", "user_id", "anonymous_id", "session_id",
            "properties", "context"}
TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
JSON_TYPES = {"string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,)}


# -- an independent reading of the landing zone and of the tracking plan -----------------------
@dataclass
class Landed:
    folder: str  # "YYYY-MM-DD-HH:00", from the path
    raw: str
    ev: dict | None  # None when the line is not JSON


def read_landing(root: Path) -> list[Landed]:
    out = []
    for path in sorted((root / "landing" / "events").glob("date=*/hour=*/*.jsonl")):
        assert not path.name.startswith((".", "_"))
        folder = f"{path.parent.parent.name[5:]}-{path.parent.name[5:]}:00"
        for raw in path.read_text(encoding="utf-8").split("\n")[:-1]:
            try:
                ev = json.loads(raw)
            except ValueError:
                ev = None
            out.append(Landed(folder, raw, ev))
    return out


def parse_ts(value) -> datetime | None:
    if not isinstance(value, str) or not TS_RE.match(value):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def plan_violation(plan: dict, ev: dict) -> str | None:
    """Check one parsed event like an ingestion would: type, required, enum, min/max, unknown keys."""
    if not isinstance(ev.get("event_id"), str) or not ev["event_id"]:
        return "missing_event_id"
    ts, received = parse_ts(ev.get("timestamp")), parse_ts(ev.get("received_at"))
    assert received is not None, ev  # the collector's own clock is never faulted
    if ts is None or ts > received + timedelta(days=1):
        return "invalid_timestamp"
    spec = plan["events"].get(ev.get("event_name"))
    if spec is None:
        return "unplanned_event"
    props, specs = ev["properties"], spec.get("properties") or {}
    if any(p.get("required") and props.get(name) is None for name, p in specs.items()):
        return "required_missing"
    for name, value in props.items():
        p = specs.get(name)
        if p is None:
            return "unexpected_property"
        if isinstance(value, bool) and p["type"] != "boolean" or not isinstance(value, JSON_TYPES[p["type"]]):
            return "datatype_mismatch"
        # the simulator has no fault that breaks these: any hit is a bug, not a counted fault
        assert "enum" not in p or value in p["enum"], (ev["event_name"], name, value)
        assert "min" not in p or value >= p["min"], (ev["event_name"], name, value)
        assert "max" not in p or value <= p["max"], (ev["event_name"], name, value)
    return None


def check_envelope(ev: dict) -> None:
    assert set(ev) == ENVELOPE, set(ev) ^ ENVELOPE
    assert UUID_RE.match(ev["event_id"])
    assert TS_RE.match(ev["timestamp"]) and TS_RE.match(ev["received_at"])
    assert ev["user_id"] is None or isinstance(ev["user_id"], str)
    assert isinstance(ev["anonymous_id"], str) and ev["anonymous_id"]
    assert ev["session_id"] is None or isinstance(ev["session_id"], str)
    ctx = ev["context"]
    assert set(ctx) == {"ip", "user_agent", "locale", "consent"}
    assert re.match(r"^\d{1,3}(\.\d{1,3}){3}$", ctx["ip"]) and ctx["user_agent"].startswith("Mozilla/5.0")
    assert set(ctx["consent"]) == {"analytics", "marketing"}
    assert all(isinstance(v, bool) for v in ctx["consent"].values())


def classify(lines: list[Landed], plan: dict) -> list[str | None]:
    """The fault kind of each line as a reader sees it (None: the clean first copy of an event)."""
    seen: set[str] = set()
    kinds: list[str | None] = []
    for line in lines:
        ev = line.ev
        if ev is None:
            kinds.append("malformed_json")
            continue
        if ev["context"]["consent"]["analytics"] is False:
            kinds.append("no_analytics_consent")
            continue
        kind = plan_violation(plan, ev)
        if kind is None:
            check_envelope(ev)
            if ev["event_id"] in seen:
                kind = "duplicate"
            elif parse_ts(ev["received_at"]) - parse_ts(ev["timestamp"]) >= timedelta(hours=2):
                kind = "late"
            seen.add(ev["event_id"])
        kinds.append(kind)
    return kinds


# -- fixtures: a few small runs shared by the tests ---------------------------------------------
@pytest.fixture(scope="module")
def plan() -> dict:
    return yaml.safe_load(PLAN_PATH.read_text())


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("sim")
    summary = simulate(root, **ARGS)
    manifest = json.loads((root / "simulator" / "truth" / "manifest.json").read_text())
    return root, summary, manifest, read_landing(root)


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# -- tests ----------------------------------------------------------------------------------------
def test_same_seed_gives_byte_identical_tree_and_another_seed_differs(run, tmp_path):
    root, *_ = run
    simulate(tmp_path / "again", **ARGS)
    assert tree(tmp_path / "again") == tree(root)
    simulate(tmp_path / "other", **{**ARGS, "seed": 12})
    ids_a = {ln.ev.get("event_id") for ln in read_landing(root) if ln.ev}
    ids_b = {ln.ev.get("event_id") for ln in read_landing(tmp_path / "other") if ln.ev}
    assert not (ids_a - {None}) & ids_b


def test_files_are_published_whole_and_summary_matches(run):
    root, summary, manifest, lines = run
    assert not [p for p in root.rglob("*") if p.name.startswith(".")]  # no partials left behind
    files = list((root / "landing" / "events").rglob("*.jsonl"))
    assert len(files) == summary.files_written == manifest["files_written"]
    assert len(lines) == summary.lines_written == manifest["lines_written"]
    assert summary.events_written == manifest["events_written"] == sum(manifest["events_by_name"].values())
    assert summary.faults == manifest["faults"] and set(summary.faults) == set(FAULT_KINDS)
    assert sum(manifest["lines_by_hour"].values()) == len(lines)
    assert Counter(ln.folder for ln in lines) == manifest["lines_by_hour"]


def test_every_line_lands_in_the_hour_of_its_received_at(run):
    *_, lines = run
    parsed = [ln for ln in lines if ln.ev is not None]
    assert len(parsed) > 0.9 * len(lines)
    for ln in parsed:
        received = ln.ev["received_at"]
        assert ln.folder == f"{received[:10]}-{received[11:13]}:00"
        assert ln.ev["received_at"] < f"{START + timedelta(days=ARGS['days'])}T00"  # never past the window


def test_fault_counts_reconcile_with_what_the_files_contain(run, plan):
    _, summary, manifest, lines = run
    kinds = classify(lines, plan)
    found = Counter(k for k in kinds if k)
    assert sum(ln.ev is None for ln in lines) == manifest["faults"]["malformed_json"]
    repeated = Counter(ln.ev["event_id"] for ln in lines if ln.ev and isinstance(ln.ev.get("event_id"), str))
    assert sum(1 for n in repeated.values() if n > 1) == manifest["faults"]["duplicate"]
    assert found.pop("no_analytics_consent") == manifest["no_analytics_consent"] == summary.no_analytics_consent
    assert {k: found.get(k, 0) for k in FAULT_KINDS} == manifest["faults"]
    assert all(manifest["faults"][k] > 0 for k in FAULT_KINDS)  # every kind shows up at this size
    # per landing hour, too
    by_hour: dict[str, Counter] = defaultdict(Counter)
    for ln, kind in zip(lines, kinds, strict=True):
        if kind and kind != "no_analytics_consent":
            by_hour[ln.folder][kind] += 1
    assert by_hour == manifest["faults_by_hour"]
    consent_by_hour = Counter(ln.folder for ln, k in zip(lines, kinds, strict=True) if k == "no_analytics_consent")
    assert consent_by_hour == manifest["no_analytics_consent_by_hour"]
    # clean distinct events (late ones included) are what the manifest promises bronze will hold
    clean = Counter(ln.ev["event_name"] for ln, k in zip(lines, kinds, strict=True) if k in (None, "late"))
    assert clean == manifest["events_by_name"]
    assert 0.03 < sum(manifest["faults"].values()) / len(lines) < 0.07  # fault_rate=0.05 of consented events


def test_consent_follows_the_users_trait(run):
    root, _, _, lines = run
    users = pq.read_table(root / "simulator" / "truth" / "users.parquet").to_pylist()
    refused = {a for u in users if not u["analytics_consent"] for a in u["anonymous_ids"]}
    granted = {a for u in users if u["analytics_consent"] for a in u["anonymous_ids"]}
    assert refused and granted
    for ln in lines:
        if ln.ev is not None:
            assert (ln.ev["anonymous_id"] in refused) == (ln.ev["context"]["consent"]["analytics"] is False)


def test_journeys_are_causally_ordered_and_agree_with_the_truth(run, plan):
    root, _, _, lines = run
    kinds = classify(lines, plan)
    first: dict[str, dict[str, datetime]] = defaultdict(dict)
    anon_first_seen: dict[str, datetime] = {}
    for ln, kind in zip(lines, kinds, strict=True):
        if kind not in (None, "late", "duplicate"):
            continue
        ev, ts = ln.ev, parse_ts(ln.ev["timestamp"])
        if ev["user_id"] is None:
            anon_first_seen[ev["anonymous_id"]] = min(ts, anon_first_seen.get(ev["anonymous_id"], ts))
            continue
        seen = first[ev["user_id"]]
        seen[ev["event_name"]] = min(ts, seen.get(ev["event_name"], ts))
    chain = ("user_signed_up", "trial_started", "subscription_started", "payment_succeeded")
    checked = Counter()
    for seen in first.values():
        steps = [seen[name] for name in chain if name in seen]
        if "user_signed_up" in seen:
            assert min(seen.values()) == seen["user_signed_up"]
        assert steps == sorted(steps)
        if "subscription_cancelled" in seen and "subscription_started" in seen:
            assert seen["subscription_cancelled"] > seen["subscription_started"]
        checked.update(seen.keys())
    assert checked["subscription_started"] >= 1 and checked["payment_succeeded"] >= 1
    users = pq.read_table(root / "simulator" / "truth" / "users.parquet").to_pylist()
    for u in users:
        seen = first.get(u["user_id"], {})
        if u["user_id"] is None:
            assert u["signup_ts"] is None and u["trial_start_ts"] is None
        elif "user_signed_up" in seen:  # its line may have been faulted away
            assert seen["user_signed_up"] == u["signup_ts"]
            assert anon_first_seen.get(u["anonymous_ids"][0], u["signup_ts"]) <= u["signup_ts"]
        if "trial_started" in seen:
            assert seen["trial_started"] == u["trial_start_ts"]


def test_weekdays_and_working_hours_are_busier(run):
    root, *_ = run
    users = pq.read_table(root / "simulator" / "truth" / "users.parquet", columns=["arrival_ts"]).to_pylist()
    arrivals = [u["arrival_ts"] for u in users]
    per_day = Counter(a.date() for a in arrivals)
    weekday = [per_day[START + timedelta(d)] for d in range(14) if (START + timedelta(d)).weekday() < 5]
    weekend = [per_day[START + timedelta(d)] for d in range(14) if (START + timedelta(d)).weekday() >= 5]
    assert sum(weekday) / len(weekday) > 1.2 * sum(weekend) / len(weekend)
    assert sum(9 <= a.hour < 18 for a in arrivals) > 2 * sum(a.hour < 6 for a in arrivals)
    # Landed volume dips on weekends too. Users keep arriving, so volume grows through the
    # window: compare each weekend with the Friday before and the Monday after it.
    per_date = Counter(date.fromisoformat(ln.folder[:10]) for ln in run[3])
    saturdays = [START + timedelta(d) for d in range(14) if (START + timedelta(d)).weekday() == 5]
    assert len(saturdays) == 2
    for saturday in saturdays:
        weekend = per_date[saturday] + per_date[saturday + timedelta(1)]
        around = per_date[saturday - timedelta(1)] + per_date[saturday + timedelta(2)]
        assert weekend < 0.85 * around, (saturday, weekend, around)


def test_zero_fault_rate_lands_only_clean_lines_with_the_same_events(run, plan, tmp_path):
    root, *_ = run
    summary = simulate(tmp_path, **{**ARGS, "fault_rate": 0.0})
    lines = read_landing(tmp_path)
    kinds = classify(lines, plan)
    assert set(kinds) == {None, "no_analytics_consent"}
    assert summary.faults == dict.fromkeys(FAULT_KINDS, 0)
    assert summary.lines_written == summary.events_written + summary.no_analytics_consent
    # faults only corrupt delivery: every valid event of the faulty run exists, identical, without faults
    faultless = {ln.ev["event_id"]: ln.ev for ln in lines}
    faulty = read_landing(root)
    for ln, kind in zip(faulty, classify(faulty, plan), strict=True):
        if kind in (None, "no_analytics_consent"):
            assert faultless[ln.ev["event_id"]] == ln.ev


def test_streaming_buffer_and_batch_size_do_not_change_the_content(run, tmp_path):
    root, *_ = run
    small = SimulatorConfig(max_buffered_bytes=20_000, max_lines_per_file=40)
    summary = simulate(tmp_path, **ARGS, config=small)

    def by_hour(r: Path) -> dict[str, bytes]:
        out: dict[str, bytes] = defaultdict(bytes)
        for p in sorted((r / "landing" / "events").glob("date=*/hour=*/*.jsonl")):
            out[str(p.parent.relative_to(r))] += p.read_bytes()
        return dict(out)

    assert by_hour(tmp_path) == by_hour(root)
    assert summary.files_written > run[1].files_written
    assert all(len(p.read_bytes().splitlines()) <= 40 for p in tmp_path.rglob("*.jsonl"))


@pytest.mark.parametrize("bad", [{"fault_rate": 1.5}, {"days": 0}, {"users": -1}, {"analytics_consent_rate": -0.1}])
def test_rejects_out_of_range_arguments(tmp_path, bad):
    with pytest.raises(ConfigError):
        simulate(tmp_path, **{**ARGS, **bad})
