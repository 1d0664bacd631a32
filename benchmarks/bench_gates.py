"""The anomaly gates' false-alarm rate on clean simulated traffic, and their detection rate on injected faults.

    python benchmarks/bench_gates.py [--lakes default|more|long] [--faults-per-lake 6] [--keep DIR]

Each lake is a window of the simulator's normal traffic (a seed, a size, a start date; the window starts
empty, so each lake also grows: visitors accumulate over its days). It is ingested into bronze the way a
ranged run does (``lake.ingest.ingest_range``; the Great Expectations suites are replaced by a passing
gate — they are not anomaly gates, and they are slow), every hour is profiled (``lake.profiles``), and
every hour is judged by the four history gates exactly as ``orchestration/bronze/checks.py`` judges it
(``expectations.landing_gates.judge_landing_hour`` and ``volume_verdict``), thresholds from
``expectations/anomaly.yaml``.

Printed per gate:

* **false alarms**: failed hours / hourly evaluations over the clean lakes, and how many of those hours
  the gate actually judged (an hour without enough history passes "not judged"). The target is
  ≤ 1 per 1,000 evaluations per gate.
* **detection**: per injected fault, the share of fault hours that the gate meant for it (and any gate)
  fails. Faults are injected in the busiest hours of each lake's last two days:

  - outage: the hour lands 2% of its lines (ledger and profile scaled down);
  - flood: the hour lands 5× its lines (ledger and profile scaled up);
  - device-mix shift: half of the hour's desktop people arrive as mobile (a release misreading user agents);
  - retyped release: every numeric property of the hour's lines is sent as a string — written into the
    landing files before ingestion, so quarantine and profiles are the real ones.

  The volume gate needs ``volume.min_history`` weeks of history, so outages and floods are only judged in
  lakes of five weeks or more.

Prints, does not assert. The default lakes take a few minutes on two cores; ``--lakes more`` adds seeds;
``--lakes long`` runs two lakes of seven and nine weeks, where the volume gate judges most hours.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

GATES = ("volume_within_history", "schema_drift_at_landing", "distribution_within_history",
         "quarantine_rate_within_history")
FAULTS = {"outage": "volume_within_history", "flood": "volume_within_history",
          "device_mix_shift": "distribution_within_history", "retyped_release": "quarantine_rate_within_history"}


@dataclass(frozen=True)
class Lake:
    users: int
    days: int
    seed: int
    start: date

    def __str__(self) -> str:
        return f"{self.users:,} users × {self.days} d, seed {self.seed}, from {self.start}"


LAKES = {
    "default": [
        Lake(2_500, 14, 21, date(2026, 3, 2)),   # the clean lake
        Lake(1_850, 7, 1, date(2026, 11, 2)),    # bench_chain --events 100k
        Lake(600, 9, 5, date(2026, 5, 4)),       # a small lake: quiet hours
        Lake(8_000, 14, 7, date(2026, 1, 5)),    # a larger one
        Lake(6_000, 35, 3, date(2026, 6, 1)),    # five weeks: the volume gate judges its last week
    ],
}
LAKES["more"] = LAKES["default"] + [
    Lake(2_500, 14, s, date(2026, 2, 2) + timedelta(weeks=s)) for s in (2, 4, 6, 8)
] + [Lake(1_200, 21, 11, date(2026, 9, 7)), Lake(12_000, 10, 13, date(2026, 4, 6))]
# Nine weeks: the volume gate (four weeks of history) judges five of them.
LAKES["long"] = [Lake(1_500, 63, 17, date(2026, 1, 5)), Lake(3_000, 49, 19, date(2026, 7, 6))]


class _Passed:
    success = True

    def summary(self) -> str:
        return "passed"

    def to_metadata(self) -> dict:
        return {}


def _passing_gate(suite, batch, parameters):  # noqa: ANN001 - the ingestion Auditor signature
    return _Passed()


def _retype(landing: Path, key: str) -> None:
    """A broken client release: every numeric property of the hour's lines arrives as a string."""
    import orjson

    day, hour = key[:10], key[11:13]
    for path in sorted((landing / f"date={day}" / f"hour={hour}").glob("*.jsonl")):
        out = []
        for line in path.read_bytes().splitlines():
            try:
                event = orjson.loads(line)
            except orjson.JSONDecodeError:
                out.append(line)
                continue
            props = event.get("properties") if isinstance(event, dict) else None
            if isinstance(props, dict):
                for k, v in props.items():
                    if isinstance(v, int | float) and not isinstance(v, bool):
                        props[k] = str(v)
            out.append(orjson.dumps(event))
        path.write_bytes(b"\n".join(out) + b"\n")


def _scaled(profile, factor: float, *, columns: bool):  # noqa: ANN001, ANN202 - lake.profiles.Profile
    from lake.profiles import Profile

    out = Profile(hours=set(profile.hours))
    for dimension, counts in profile.counts.items():
        keep = dimension.startswith("column:") and not columns
        for key, count in counts.items():
            n = count if keep else int(round(count * factor))
            if n:
                out.add(next(iter(profile.hours)), dimension, key, n)
    return out


def _device_shift(profile):  # noqa: ANN001, ANN202
    from lake.profiles import Profile

    out = Profile(hours=set(profile.hours), counts={d: dict(c) for d, c in profile.counts.items()})
    devices = out.counts.get("column:device_type", {})
    moved = devices.get("desktop", 0) // 2
    if moved:
        devices["desktop"] -= moved
        devices["mobile"] = devices.get("mobile", 0) + moved
    return out


def _judge(key, hours, ledger, planned, config):  # noqa: ANN001, ANN202
    """The four gates' verdicts on one hour: ``gate -> (passed, judged)``."""
    from expectations.anomaly import volume_verdict
    from expectations.landing_gates import judge_landing_hour, volume_history_keys

    lines = {k: n for k, (_q, n) in ledger.items()}
    past = [lines[k] for k in volume_history_keys(key, config) if k in lines]
    volume = volume_verdict(lines.get(key, 0), past, **config["volume"])
    v = judge_landing_hour(key, hours=hours, ledger=ledger, planned=planned, config=config)
    return {
        "volume_within_history": (volume.passed, volume.median is not None),
        "schema_drift_at_landing": (v.schema.passed, bool(v.schema.judged)),
        "distribution_within_history": (v.distribution.passed, bool(v.distribution.judged)),
        "quarantine_rate_within_history": (v.quarantine_rate.passed, v.quarantine_rate.overall.upper is not None
                                           and v.quarantine_rate.overall.median is not None),
    }


def run_lake(lake: Lake, workdir: Path, *, faults_per_lake: int) -> tuple[dict, dict, list[str]]:
    """Simulate, ingest and judge one lake. Returns per gate ``[evaluations, judged, failed]`` on clean
    hours, per fault ``[injected, caught by its gate, caught by any gate]``, and the false alarms."""
    from expectations.anomaly import load_config
    from lake.contracts import load_plan
    from lake.ingest import ingest_range, list_landing_partitions
    from lake.ledger import read_ledger
    from lake.paths import LakePaths
    from lake.pii import PiiMasker, pii_key_from_env
    from lake.profiles import profile_hours
    from simulation import simulate

    root = workdir / f"s{lake.seed}-u{lake.users}-d{lake.days}"
    shutil.rmtree(root, ignore_errors=True)
    t0 = time.perf_counter()
    simulate(root, users=lake.users, days=lake.days, seed=lake.seed, start=lake.start)
    paths = LakePaths.from_root(str(root))
    keys = list_landing_partitions(paths)
    config = load_config()
    # Fault hours: the busiest hours of the last two days, at least three hours apart.
    sizes = {k: sum(f.stat().st_size for f in (Path(paths.landing_events) / f"date={k[:10]}" / f"hour={k[11:13]}")
                    .glob("*.jsonl")) for k in keys[-48:]}
    fault_hours: list[str] = []
    for key in sorted(sizes, key=lambda k: -sizes[k]):
        if all(abs(keys.index(key) - keys.index(f)) >= 3 for f in fault_hours):
            fault_hours.append(key)
        if len(fault_hours) == faults_per_lake:
            break
    retyped = set(fault_hours[: max(1, faults_per_lake // 3)])
    for key in retyped:
        _retype(Path(paths.landing_events), key)
    plan = load_plan(None)
    ingest_range(paths, keys, plan=plan, masker=PiiMasker(pii_key_from_env(paths)), auditor=_passing_gate)
    hours = profile_hours(paths, keys, columns=config["distribution_drift"]["columns"])
    ledger = {r["landing_partition"]: (r["quarantined"], r["lines_landed"])
              for r in read_ledger(paths, keys).to_pylist()}
    planned = {name: set(spec.properties) for name, spec in plan.events.items()}

    clean = {g: [0, 0, 0] for g in GATES}
    alarms: list[str] = []
    for key in keys:
        if key in retyped:
            continue
        for gate, (passed, judged) in _judge(key, hours, ledger, planned, config).items():
            clean[gate][0] += 1
            clean[gate][1] += judged
            if not passed:
                clean[gate][2] += 1
                alarms.append(f"{gate} {key} ({lake})")

    detected = {f: [0, 0, 0] for f in FAULTS}

    def tally(fault: str, verdicts: dict) -> None:
        if fault in ("outage", "flood") and not verdicts["volume_within_history"][1]:
            return  # too little history for the volume gate: not a detection trial
        detected[fault][0] += 1
        detected[fault][1] += not verdicts[FAULTS[fault]][0]
        detected[fault][2] += any(not p for p, _j in verdicts.values())

    for key in fault_hours:
        if key in retyped:
            tally("retyped_release", _judge(key, hours, ledger, planned, config))
            continue
        q, n = ledger[key]
        for fault, factor in (("outage", 0.02), ("flood", 5.0)):
            faulty_hours = {**hours, key: _scaled(hours[key], factor, columns=factor < 1)}
            faulty_ledger = {**ledger, key: (int(q * factor), int(n * factor))}
            tally(fault, _judge(key, faulty_hours, faulty_ledger, planned, config))
        tally("device_mix_shift", _judge(key, {**hours, key: _device_shift(hours[key])}, ledger, planned, config))
    print(f"  {lake}: {len(keys)} hours, {sum(n for _q, n in ledger.values()):,} lines, "
          f"{time.perf_counter() - t0:.0f}s", flush=True)
    shutil.rmtree(root, ignore_errors=True)
    return clean, detected, alarms


def upper_bound(failed: int, trials: int, confidence: float = 0.95) -> float:
    """One-sided Clopper-Pearson upper bound of a rate after ``failed`` of ``trials`` (1.0 without trials)."""
    from scipy.stats import beta

    if trials == 0 or failed >= trials:
        return 1.0
    return float(beta.ppf(confidence, failed + 1, trials - failed))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lakes", choices=sorted(LAKES), default="default")
    parser.add_argument("--faults-per-lake", type=int, default=6)
    parser.add_argument("--keep", type=Path, help="work directory (kept); default: a temporary one, removed")
    args = parser.parse_args(argv)
    os.environ.setdefault("GROWTHLAKE_PII_KEY", secrets.token_hex(32))
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="bench_gates_"))
    workdir.mkdir(parents=True, exist_ok=True)
    clean = {g: [0, 0, 0] for g in GATES}
    detected = {f: [0, 0, 0] for f in FAULTS}
    alarms: list[str] = []
    print(f"lakes ({args.lakes}):")
    try:
        for lake in LAKES[args.lakes]:
            c, d, a = run_lake(lake, workdir, faults_per_lake=args.faults_per_lake)
            for g in GATES:
                clean[g] = [x + y for x, y in zip(clean[g], c[g], strict=True)]
            for f in FAULTS:
                detected[f] = [x + y for x, y in zip(detected[f], d[f], strict=True)]
            alarms += a
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print("\nfalse alarms on clean traffic (target ≤ 1 per 1,000 hourly evaluations):")
    print("  (95% upper: the one-sided Clopper-Pearson bound on the rate per judged hour — an hour the gate")
    print("   could not judge passes by construction, so only judged hours say anything about the rate)")
    print(f"  {'gate':32} {'evaluations':>11} {'judged':>7} {'failed':>6} {'per 1,000':>9} {'95% upper':>9}")
    for g, (n, judged, failed) in clean.items():
        print(f"  {g:32} {n:>11,} {judged:>7,} {failed:>6} {1000 * failed / max(n, 1):>9.2f} "
              f"{1000 * upper_bound(failed, judged):>9.2f}")
    for alarm in alarms[:20]:
        print(f"    false alarm: {alarm}")
    print("\ndetection of injected faults:")
    print(f"  {'fault':18} {'hours':>5} {'by its gate':>22} {'by any gate':>11}")
    for f, (n, own, any_) in detected.items():
        rate = f"{own / n:.0%}" if n else "-"
        anyr = f"{any_ / n:.0%}" if n else "-"
        print(f"  {f:18} {n:>5} {FAULTS[f] + ' ' + rate:>22} {anyr:>11}")


if __name__ == "__main__":
    main()
