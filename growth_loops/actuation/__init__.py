"""The actuation outbox: where decided actions leave the lake for the product.

* flags — ``build_features_document`` turns flag decisions (:class:`UnitAssignments`,
  :class:`HashExperiment`, :class:`SegmentedExperiment`, :class:`Rollback`) into a GrowthBook SDK
  features document, so the product's ``growthbook`` SDK serves exactly the decided variant;
* documents — ``publish_features_document`` writes it atomically (a local file or one object-store
  PUT) and returns its content hash, ``load_features_document`` reads it;
* messages — the Delta message outbox (``$ROOT/delta/decisions/message_outbox``): ``enqueue``
  (idempotent, consent-checked), ``pending``, ``mark_sent``, ``withhold`` / ``release`` (the kill
  switch), ``recent_counts`` (the frequency cap).
"""

from growth_loops.actuation.documents import (
    features_document_path,
    load_features_document,
    publish_features_document,
)
from growth_loops.actuation.flags import (
    ActuationError,
    FlagDecision,
    HashExperiment,
    Rollback,
    SegmentedExperiment,
    UnitAssignments,
    build_features_document,
    canonical_json,
    document_hash,
)
from growth_loops.actuation.messages import (
    MESSAGE_OUTBOX,
    EnqueueResult,
    OutboxMessage,
    enqueue,
    mark_sent,
    message_id,
    outbox_path,
    pending,
    recent_counts,
    release,
    withhold,
)

__all__ = [
    "MESSAGE_OUTBOX",
    "ActuationError",
    "EnqueueResult",
    "FlagDecision",
    "HashExperiment",
    "OutboxMessage",
    "Rollback",
    "SegmentedExperiment",
    "UnitAssignments",
    "build_features_document",
    "canonical_json",
    "document_hash",
    "enqueue",
    "features_document_path",
    "load_features_document",
    "mark_sent",
    "message_id",
    "outbox_path",
    "pending",
    "publish_features_document",
    "recent_counts",
    "release",
    "withhold",
]
