"""What one command costs on an aggregate with a long history: a viewing of a video
watched N times already, a charge to an account charged N times.

    python -m bench.hot [--aggregate video account] [--events 0 10000 50000] [--n 100]

On a nats-server of its own with the project's nats.conf (`sync_interval:
always`), the reactor's command handler (in process, the real event store and
view buckets) handles commands on one aggregate, one at a time. For each N the
aggregate is first given N events (a video viewings by 500 signed-in viewers,
an account charges), appended straight to the event store a thousand at a
time (not timed). The first command after that (which loads the history and
brings its records up to date) is timed apart; then `n` more (a viewing by a
new viewer, a new charge): p50 and p99 of `handle`, from the command to its
notice.

What each next command costs should not grow with what the aggregate has seen.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import msgspec

from bench.stack import own_server
from bench.stats import summarize
from contracts.topology import RESERVATIONS_BUCKET, ensure_topology
from contracts.views import ViewBuckets
from domains import registry
from domains.accounting.commands import ChargeAccount, OpenAccount
from domains.accounting.events import AccountCharged
from domains.videos.commands import PublishVideo, RecordViewing
from domains.videos.events import VideoViewed
from reactor.eventstore import MAX_DECISION, EventStore
from reactor.handling import CommandHandler
from reactor.reservations import Reservations
from tests.conftest import connect_test_client
from tests.helpers import envelope

VIEWERS = 500  # the seeded viewings' distinct viewers


@dataclass(frozen=True)
class Hot:
    """An aggregate that grows: how it is made, what it is seeded with, and the next command."""

    aggregate: str
    create: Callable[[], msgspec.Struct]
    seed: Callable[[int], msgspec.Struct]  # the i-th event
    next: Callable[[], msgspec.Struct]  # a command that adds one


SCENARIOS: Final = {
    "video": Hot(  # a viewing by a viewer not seen before
        "video",
        lambda: PublishVideo("owner", "Cats", "https://example.org/cats.mp4"),
        lambda i: VideoViewed(f"seed-{i}", f"viewer-{i % VIEWERS}"),
        lambda: RecordViewing(uuid.uuid4().hex, uuid.uuid4().hex[:12]),
    ),
    "account": Hot(  # a charge (as billing sends one a delivery)
        "account",
        lambda: OpenAccount("Grace"),
        lambda i: AccountCharged(1250, f"seed-shipment-{i:08d}"),
        lambda: ChargeAccount(1250, uuid.uuid4().hex),
    ),
}


async def measure(
    url: str, hot: Hot, sizes: list[int], n: int
) -> list[tuple[int, float, float, float]]:
    """Per size: (events, first command s, p50 ms, p99 ms)."""
    nc = await connect_test_client(url)
    js = nc.jetstream()
    found = registry()
    await ensure_topology(js, found.buckets)
    buckets = ViewBuckets(js, 1)
    reservations = Reservations(await js.key_value(RESERVATIONS_BUCKET))
    store = EventStore(nc, found)

    def reactor() -> CommandHandler:
        """A command handler that remembers nothing yet."""
        return CommandHandler(found, store, reservations, lambda: buckets)

    rows = []
    try:
        for size in sizes:
            made = envelope(hot.create())
            created = await reactor().handle(made)
            assert created.status == "succeeded", created.error
            expected = created.position or 0
            for start in range(0, size, MAX_DECISION):
                events = [hot.seed(i) for i in range(start, min(start + MAX_DECISION, size))]
                seeding = envelope(hot.next(), aggregate_id=made.aggregate_id)
                _, expected = await store.append(
                    seeding, hot.aggregate, events, expected=expected, at=datetime.now(UTC)
                )
            fresh = reactor()  # its first command loads the aggregate
            took = []
            for _ in range(n + 1):
                command = envelope(hot.next(), aggregate_id=made.aggregate_id)
                began = time.perf_counter()
                notice = await fresh.handle(command)
                took.append(time.perf_counter() - began)
                assert notice.status == "succeeded", notice.error
            summary = summarize(took[1:])
            rows.append((size, took[0], summary.p50_ms, summary.p99_ms))
    finally:
        await nc.close()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hot", description=__doc__)
    parser.add_argument("--events", type=int, nargs="+", default=[0, 10_000, 50_000])
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--aggregate", choices=sorted(SCENARIOS), nargs="+", default=["video"])
    args = parser.parse_args()
    for name in args.aggregate:
        with own_server("bench-hot-") as url:
            rows = asyncio.run(measure(url, SCENARIOS[name], args.events, args.n))
        print(f"{name} with N events: {args.n} commands each, one at a time, sync always")
        for size, first, p50, p99 in rows:
            print(
                f"  N={size:>7,}  first {first:7.3f} s  then p50 {p50:8.2f} ms  p99 {p99:8.2f} ms"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
