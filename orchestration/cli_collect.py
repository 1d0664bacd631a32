"""``growthlake collect``: the Segment / RudderStack-compatible HTTP collector over the landing zone."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import TYPE_CHECKING

from orchestration.cli_settings import KEYS, WRITE

if TYPE_CHECKING:
    from lake.collector import CollectorConfig

__all__ = ["add_parser", "config_from_args"]


def config_from_args(args: argparse.Namespace) -> CollectorConfig:
    """The :class:`~lake.collector.CollectorConfig` the options of ``growthlake collect`` ask for."""
    from lake.collector import CollectorConfig

    return CollectorConfig.from_env(
        host=args.host, port=args.port, max_message_bytes=args.max_message_kb * 1024,
        max_batch_bytes=args.max_batch_kb * 1024, max_inflight_bytes=args.max_inflight_mb << 20,
        max_unauthenticated_bytes=args.max_unauthenticated_kb * 1024,
        max_connections_per_ip=args.max_connections_per_ip, header_timeout_s=args.header_timeout_s,
        body_timeout_s=args.body_timeout_s, idle_timeout_s=args.idle_timeout_s, linger_ms=args.linger_ms,
    )


def _cmd_collect(args: argparse.Namespace) -> int:
    from lake.collector import serve
    from lake.paths import LakePaths

    paths = LakePaths.from_root(args.root)
    config = config_from_args(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    def ready(url: str) -> None:
        print(f"collecting on {url} (/v1/batch, /v1/track, /v1/identify, /v1/page, /v1/screen, /v1/alias, "
              f"/v1/group) -> {paths.landing_events}; {len(config.write_keys)} write key(s)", flush=True)

    stats = serve(paths, config, ready=ready)
    print(f"stopped: {stats.requests:,} requests, {stats.acknowledged_messages:,} messages landed in "
          f"{stats.files_landed:,} files, rejected {dict(sorted(stats.rejected.items())) or 'none'} "
          f"({stats.rejected_messages:,} messages refused in partial batches), {stats.hangups:,} clients hung "
          f"up mid-body, {stats.refused_connections:,} connections over the per-address cap, "
          f"{stats.header_timeouts:,} header timeouts", file=sys.stderr)
    return 0


def add_parser(sub, common: argparse.ArgumentParser) -> None:
    c = sub.add_parser(
        "collect", parents=[common],
        help="receive events from Segment / RudderStack SDKs over HTTP into the landing zone",
        description="Receive events from Segment / RudderStack SDKs over HTTP (/v1/batch, /v1/track, ...) and "
                    "answer 200 once they are durably in the landing zone. Write keys: $GROWTHLAKE_WRITE_KEYS. "
                    "A request with a bad key in its Authorization header gets 401 before its body is read; a "
                    "batch with bad messages lands the good ones and lists the others in its 200 answer.")
    c.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    c.add_argument("--port", type=int, default=8088, help="port (0: any free port, printed on start)")
    c.add_argument("--max-message-kb", type=int, default=32, help="largest message accepted (Segment: 32)")
    c.add_argument("--max-batch-kb", type=int, default=500,
                   help="largest request body accepted, decompressed (Segment: 500)")
    c.add_argument("--max-inflight-mb", type=int, default=64,
                   help="decompressed request bytes held in memory (being received or waiting to land); "
                        "beyond it requests get 429 + Retry-After (default 64)")
    c.add_argument("--max-unauthenticated-kb", type=int, default=64,
                   help="a request without an Authorization header is read up to this size to find a writeKey "
                        "in its body; a larger one gets 401 unread (default 64)")
    c.add_argument("--max-connections-per-ip", type=int, default=128,
                   help="open connections per client address; one more gets 429 and is closed "
                        "(default 128; 0: no cap, e.g. behind a reverse proxy that caps them)")
    c.add_argument("--header-timeout-s", type=float, default=10.0,
                   help="seconds a request line and headers may take to arrive; then 408 and close (default 10)")
    c.add_argument("--body-timeout-s", type=float, default=60.0,
                   help="seconds a request body may take to arrive after its headers; then 408 (default 60)")
    c.add_argument("--idle-timeout-s", type=float, default=75.0,
                   help="seconds an idle keep-alive connection is kept open (default 75)")
    c.add_argument("--linger-ms", type=float, default=50.0,
                   help="how long a commit waits for more requests (fewer, larger landing files)")
    c.set_defaults(fn=_cmd_collect, needs=WRITE | KEYS)
