"""`python -m reactor`: wire the reactor to NATS and run it until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence
from contextlib import AsyncExitStack

from contracts.commands import CreateLocation
from contracts.connection import Interrupted, NatsSettings, NatsUnavailable, connect
from contracts.projections import ActiveProjection
from contracts.topology import ensure_topology
from reactor.consumer import Projection, Reactor
from reactor.projections import LocationsProjection

log = logging.getLogger("reactor")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m reactor", description=__doc__)
    parser.add_argument(
        "--dev",
        action="store_true",
        default=os.environ.get("REACTOR_DEV", "") in ("1", "true", "yes"),
        help="honour the 'simulate slow reactor' request of commands (env REACTOR_DEV=1)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=int(os.environ.get("REACTOR_CONCURRENCY", "64")),
        help="commands handled at once by this process (env REACTOR_CONCURRENCY)",
    )
    parser.add_argument(
        "--max-attempts",
        type=int,
        default=int(os.environ.get("REACTOR_MAX_ATTEMPTS", "5")),
        help="deliveries before a failing command is dead-lettered (env REACTOR_MAX_ATTEMPTS)",
    )
    parser.add_argument(
        "--ack-wait",
        type=float,
        default=float(os.environ.get("REACTOR_ACK_WAIT", "30")),
        help="seconds before an unacknowledged command is redelivered (env REACTOR_ACK_WAIT)",
    )
    parser.add_argument(
        "--stop-grace",
        type=float,
        default=float(os.environ.get("REACTOR_STOP_GRACE", "10")),
        help="seconds in-flight commands get to finish on SIGTERM (env REACTOR_STOP_GRACE)",
    )
    return parser.parse_args(argv)


async def run(args: argparse.Namespace, settings: NatsSettings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    active = ActiveProjection()
    async with AsyncExitStack() as stack:
        # A reconnect reads the projection pointer again: a move may have gone by unseen.
        nc = await connect(settings, name="reactor", reconnected_cb=active.refresh, stop=stop)
        stack.push_async_callback(nc.close)
        js = nc.jetstream()
        await ensure_topology(js)  # before the buckets are opened
        await active.start(nc)
        stack.push_async_callback(active.stop)
        locations = LocationsProjection(lambda: active.current)
        projections: dict[type, Projection] = {CreateLocation: locations}
        reactor = Reactor(
            js,
            projections,
            dev=args.dev,
            max_in_flight=args.concurrency,
            max_attempts=args.max_attempts,
            ack_wait=args.ack_wait,
            stop_grace=args.stop_grace,
        )
        await reactor.run(stop)
        log.info("reactor stopping: in-flight work done, flushing")
        await nc.flush(timeout=5)
    log.info("reactor stopped")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        asyncio.run(run(args, NatsSettings.from_env()))
    except NatsUnavailable as exc:
        print(f"reactor: {exc}", file=sys.stderr)
        return 1
    except Interrupted:
        return 130
    return 0
