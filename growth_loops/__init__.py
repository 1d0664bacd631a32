"""growth_loops: feature views and stores, experiments, bandits, guardrails, the loops, actuation, the simulator."""
