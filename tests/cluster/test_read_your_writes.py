"""Read-your-writes on R3: a record read after its notice, from the other API instance
(connected to another server), is never older than the notice.

Views are KV buckets without direct gets: every read is answered by the
bucket's stream leader, which has the write the notice follows (inline
views are written before the notice is published).
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.cluster.conftest import ClusterStack
from tests.helpers import unique_name

pytestmark = pytest.mark.cluster

PAIRS = 10_000
WORKERS = 40


async def test_ten_thousand_notice_then_get_pairs_across_instances_are_never_stale(
    cluster: ClusterStack,
) -> None:
    stale: list[str] = []
    timeout = httpx.Timeout(20.0)

    async def pairs(worker: int) -> int:
        # A session each (a session's Prefer waits are capped); half the workers
        # write through one instance and read through the other, half the reverse.
        write_url, read_url = cluster.urls[worker % 2], cluster.urls[1 - worker % 2]
        done = 0
        async with (
            httpx.AsyncClient(base_url=write_url, timeout=timeout) as writer,
            httpx.AsyncClient(base_url=read_url, timeout=timeout) as reader,
        ):
            for _ in range(worker, PAIRS, WORKERS):
                body = {"name": unique_name(), "category": "City", "description": "pair"}
                made = await writer.post("/api/locations", json=body, headers={"Prefer": "wait=10"})
                assert made.status_code == 201, made.text  # the notice, relayed
                read = await reader.get(made.headers["location"])
                if read.status_code != 200 or read.json() != made.json():
                    stale.append(f"{made.headers['location']}: {read.status_code} {read.text}")
                done += 1
        return done

    started = time.monotonic()
    done = sum(await asyncio.gather(*(pairs(w) for w in range(WORKERS))))
    took = time.monotonic() - started
    assert done == PAIRS
    assert stale == [], f"{len(stale)} stale reads of {PAIRS} in {took:.0f}s: {stale[:3]}"
