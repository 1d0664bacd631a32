"""Resources shared by every layer: the lake (storage root, tracking plan, PII key)."""

from __future__ import annotations

import dagster as dg
from pydantic import PrivateAttr

from lake.contracts import TrackingPlan, load_plan
from lake.paths import LakePaths
from lake.pii import PiiMasker, pii_key_from_env

__all__ = ["LakeResource"]


class LakeResource(dg.ConfigurableResource):
    """Where the lake lives and what contract it enforces.

    ``root`` defaults to ``$GROWTHLAKE_ROOT`` (else ``./data``), resolved when a run starts, never
    at import. The PII key always comes from ``$GROWTHLAKE_PII_KEY`` (or the demo profile).
    """

    root: str | None = None
    tracking_plan: str | None = None

    _plan: TrackingPlan | None = PrivateAttr(default=None)
    _masker: PiiMasker | None = PrivateAttr(default=None)

    def paths(self) -> LakePaths:
        return LakePaths.from_root(self.root)

    def plan(self) -> TrackingPlan:
        if self._plan is None:
            self._plan = load_plan(self.tracking_plan)
        return self._plan

    def masker(self) -> PiiMasker:
        if self._masker is None:
            self._masker = PiiMasker(pii_key_from_env(self.paths()))
        return self._masker
