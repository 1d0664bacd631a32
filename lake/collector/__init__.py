"""``growthlake collect``: a Segment / RudderStack-compatible HTTP collector over the landing zone.

Apps keep their Segment or RudderStack SDK and point its host (``host=`` / ``dataPlaneUrl``) at
the collector; the write key is checked (HTTP Basic, keys from ``$GROWTHLAKE_WRITE_KEYS``); a
request is acknowledged only once its messages are durably in
``landing/events/date=YYYY-MM-DD/hour=HH/`` (by receive time), as Segment-format lines that
ingestion maps to the canonical model (``lake.ingest.segment``).
"""

from lake.collector.config import WRITE_KEYS_ENV, CollectorConfig, write_keys_from_env
from lake.collector.protocol import RequestRejected
from lake.collector.server import Collector, CollectorStats, RunningCollector, serve, start_in_thread
from lake.collector.writer import LandingWriter

__all__ = [
    "WRITE_KEYS_ENV",
    "Collector",
    "CollectorConfig",
    "CollectorStats",
    "LandingWriter",
    "RequestRejected",
    "RunningCollector",
    "serve",
    "start_in_thread",
    "write_keys_from_env",
]
