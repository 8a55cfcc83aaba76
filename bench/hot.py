"""What one command costs on an aggregate with a long history: a viewing of a video
watched N times already.

    python -m bench.hot [--events 0 10000 50000] [--n 100]

On a nats-server of its own with the project's nats.conf (`sync_interval:
always`), the reactor's command handler (in process, the real event store and
view buckets) handles viewings of one video, one at a time. For each N the
video is first given N viewings by 500 signed-in viewers, appended straight to
the event store a thousand at a time (not timed), and its first command (which
loads the history and brings its records up to date) is timed apart. Then `n`
viewings by new viewers are timed: p50 and p99 of `handle`, from the command
to its notice.

A popular video, a much-charged account: what each next command costs should
not grow with what the aggregate has seen.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import sys
import time
import uuid
from datetime import UTC, datetime

from bench.stack import own_server
from bench.stats import summarize
from contracts.commands import Command
from contracts.topology import RESERVATIONS_BUCKET, ensure_topology
from contracts.views import ViewBuckets
from domains import registry
from domains.videos.commands import PublishVideo, RecordViewing
from domains.videos.events import VideoViewed
from reactor.eventstore import MAX_DECISION, EventStore
from reactor.handling import CommandHandler
from reactor.reservations import Reservations
from tests.conftest import connect_test_client
from tests.helpers import envelope

VIEWERS = 500  # the seeded viewings' distinct viewers


def id_(buckets: ViewBuckets) -> ViewBuckets:
    return buckets


def new_viewing(video_id: str) -> Command:
    """A viewing by a viewer not seen before."""
    return envelope(RecordViewing(uuid.uuid4().hex, uuid.uuid4().hex[:12]), aggregate_id=video_id)


async def measure(url: str, sizes: list[int], n: int) -> list[tuple[int, float, float, float]]:
    """Per size: (events, first command s, p50 ms, p99 ms)."""
    nc = await connect_test_client(url)
    js = nc.jetstream()
    found = registry()
    await ensure_topology(js, found.buckets)
    rows = []
    try:
        for size in sizes:
            buckets = ViewBuckets(js, 1)
            store = EventStore(nc, found)
            reservations = Reservations(await js.key_value(RESERVATIONS_BUCKET))
            handler = CommandHandler(found, store, reservations, functools.partial(id_, buckets))
            video = envelope(PublishVideo("owner", "Cats", "https://example.org/cats.mp4"))
            published = await handler.handle(video)
            assert published.status == "succeeded"
            expected = published.position or 0
            for start in range(0, size, MAX_DECISION):
                count = min(MAX_DECISION, size - start)
                events = [
                    VideoViewed(f"seed-{start + i}", f"viewer-{(start + i) % VIEWERS}")
                    for i in range(count)
                ]
                seeding = envelope(RecordViewing("seed"), aggregate_id=video.aggregate_id)
                _, expected = await store.append(
                    seeding, "video", events, expected=expected, at=datetime.now(UTC)
                )
            fresh = CommandHandler(  # remembers nothing: its first command loads
                found, EventStore(nc, found), reservations, functools.partial(id_, buckets)
            )
            viewing = functools.partial(new_viewing, video.aggregate_id)

            began = time.perf_counter()
            assert (await fresh.handle(viewing())).status == "succeeded"
            first = time.perf_counter() - began
            took = []
            for _ in range(n):
                command = viewing()
                began = time.perf_counter()
                notice = await fresh.handle(command)
                took.append(time.perf_counter() - began)
                assert notice.status == "succeeded", notice.error
            summary = summarize(took)
            rows.append((size, first, summary.p50_ms, summary.p99_ms))
    finally:
        await nc.close()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hot", description=__doc__)
    parser.add_argument("--events", type=int, nargs="+", default=[0, 10_000, 50_000])
    parser.add_argument("--n", type=int, default=100)
    args = parser.parse_args()
    with own_server("bench-hot-") as url:
        rows = asyncio.run(measure(url, args.events, args.n))
    print(f"a viewing of a video with N viewings: {args.n} each, one at a time, sync always")
    for size, first, p50, p99 in rows:
        print(f"  N={size:>7,}  first {first:7.3f} s  then p50 {p50:8.2f} ms  p99 {p99:8.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
