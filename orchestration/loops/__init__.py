"""Growth-loop wiring: one asset per loop's decisions, daily, after the features they read."""

from orchestration.loops.assets import LOOP_KEYS, decide_loops
from orchestration.loops.schedules import nightly_loops_job, nightly_loops_schedule

__all__ = ["LOOP_KEYS", "decide_loops", "nightly_loops_job", "nightly_loops_schedule"]
