"""Silver layer wiring: bronze events -> identity map, stitched events, sessions."""

from orchestration.silver.assets import build_silver_hour

__all__ = ["build_silver_hour"]
