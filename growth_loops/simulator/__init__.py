"""A seeded, deterministic model of a SaaS product with a free trial, landing raw JSONL events.

>>> from growth_loops.simulator import simulate
>>> summary = simulate("data", users=2_000, days=14, seed=7)  # doctest: +SKIP
"""

from .config import FAULT_KINDS, NO_CONSENT, SimulatorConfig
from .engine import SimulationSummary, simulate

__all__ = ["simulate", "SimulationSummary", "SimulatorConfig", "FAULT_KINDS", "NO_CONSENT"]
