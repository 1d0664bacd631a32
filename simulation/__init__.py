"""A seeded, deterministic model of a SaaS product with a free trial, landing raw JSONL events.

One product model (:class:`ProductModel`: the funnel, prices, trial, billing, consent, email, dormancy,
sessions, failed renewals; the rules both apply are written once, in :mod:`simulation.behaviour`), two
simulators:
``simulate`` lands a whole window of journeys at once (ingestion, marts, benchmarks);
``ClosedLoopSimulator`` steps day by day and reads the loops' outbox (GrowthBook flags document,
messages), so decisions change what users do next, with known true effects.

>>> from simulation import simulate
>>> summary = simulate("data", users=2_000, days=14, seed=7)  # doctest: +SKIP
"""

from .closed_loop import ClosedLoopConfig, ClosedLoopSimulator, DayTruth, read_truth, truth_summary
from .config import FAULT_KINDS, NO_CONSENT, ProductModel, SimulatorConfig
from .engine import SimulationSummary, simulate

__all__ = ["simulate", "SimulationSummary", "ProductModel", "SimulatorConfig", "FAULT_KINDS", "NO_CONSENT",
           "ClosedLoopConfig", "ClosedLoopSimulator", "DayTruth", "read_truth", "truth_summary"]
