"""What the closed loop's product reads each morning: the GrowthBook flags document (evaluated per user
with the real SDK) and the message outbox (which messages are due for delivery)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl

from lake.errors import ConfigError

__all__ = ["Flags", "Message", "messages_due"]


class Flags:
    """Evaluates flags of a GrowthBook features document per user with the real SDK."""

    def __init__(self, doc: Mapping[str, Any] | None) -> None:
        self.features: Mapping[str, Any] | None = None
        self.unknown_values = 0
        self.exposures: dict[tuple[str, str], tuple[str, str]] = {}
        if doc is None:
            return
        features = doc.get("features") if isinstance(doc, Mapping) else None
        if not isinstance(features, Mapping):
            raise ConfigError("flags_document", "is not a GrowthBook features document (no `features` object)",
                              "Pass {'features': {...}}, e.g. growth_loops.actuation.build_features_document(...).")
        self.features = features

    def value(self, key: str, user_id: str, allowed: Mapping[str, Any], attributes: Mapping[str, Any] | None = None
              ) -> str:
        """The variant the product renders: the flag's value, or control when the flag is absent
        or serves a value the product does not know."""
        if self.features is None or key not in self.features:
            return "control"
        from growthbook import GrowthBook  # the SDK the product uses; imported only when flags exist

        gb = GrowthBook(attributes={"id": user_id, **(attributes or {})}, features=dict(self.features))
        try:
            result = gb.eval_feature(key)
        finally:
            gb.destroy()
        value = "control" if result.value is None else result.value
        if isinstance(value, str) and value in allowed:
            if result.source == "experiment" and result.experiment is not None:
                # What the product's trackingCallback logs: the exposure of an experiment rule.
                self.exposures[(key, user_id)] = (result.experiment.key, value)
            return value
        self.unknown_values += 1
        return "control"

    def exposure(self, key: str, user_id: str) -> dict | None:
        """``experiment_viewed`` properties of the user's last evaluation of ``key`` by an
        experiment rule (None for forced values, defaults and holdouts)."""
        hit = self.exposures.get((key, user_id))
        if hit is None:
            return None
        return {"experiment_id": hit[0], "variation_id": hit[1], "feature_key": key}


@dataclass(frozen=True)
class Message:
    key: str
    person_id: str
    template: str
    sent_ms: int


def messages_due(messages: pl.DataFrame | None, before_ms: int, delivered: set[str]) -> list[Message]:
    """Messages sent before ``before_ms`` and not delivered yet, in (sent time, key) order."""
    if messages is None or messages.height == 0:
        return []
    if not isinstance(messages, pl.DataFrame):
        raise ConfigError("messages", f"is a {type(messages).__name__}", "Pass a polars DataFrame (or None).")
    cols = set(messages.columns)
    ts_cols = [c for c in ("sent_at", "created_at") if c in cols]
    if not {"person_id", "template"} <= cols or not ts_cols:
        raise ConfigError("messages", f"has columns {sorted(cols)}",
                          "Give at least person_id, template and sent_at and/or created_at (UTC datetimes).")
    for c in ts_cols:
        if not isinstance(messages.schema[c], pl.Datetime):
            raise ConfigError(f"messages.{c}", f"is {messages.schema[c]}", "Use a (UTC) datetime column.")
    sent = pl.coalesce([pl.col(c).dt.epoch("ms") for c in ts_cols]).alias("_sent_ms")
    key = pl.col("message_id").cast(pl.String) if "message_id" in cols else pl.lit(None, pl.String)
    frame = messages.select(pl.col("person_id").cast(pl.String), pl.col("template").cast(pl.String), sent,
                            key.alias("_key"))
    if frame["person_id"].null_count() or frame["template"].null_count():
        raise ConfigError("messages", "has rows without person_id or template", "Drop or fix them.")
    frame = frame.filter(pl.col("_sent_ms").is_not_null() & (pl.col("_sent_ms") < before_ms))
    out: dict[str, Message] = {}
    for person, template, sent_ms, mkey in frame.iter_rows():
        if mkey is None:
            mkey = hashlib.sha256(f"{person}\x1f{template}\x1f{sent_ms}".encode()).hexdigest()[:32]
        if mkey in delivered or mkey in out:
            continue
        out[mkey] = Message(mkey, person, template, int(sent_ms))
    return sorted(out.values(), key=lambda m: (m.sent_ms, m.key))
