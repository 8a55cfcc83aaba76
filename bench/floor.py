"""The raw floor: what NATS alone costs for one command, with no HTTP and no SSE.

One round trip of the service's NATS work, sequentially: JetStream publish
(acked), pull it from a durable consumer, a KV put, and the ack. Measured on
the same server as the service, with streams of its own.
"""

from __future__ import annotations

import time

from nats.js import api

from tests.conftest import connect_test_client


async def nats_floor(nats_url: str, n: int) -> list[float]:
    nc = await connect_test_client(nats_url)
    try:
        js = nc.jetstream()
        await js.add_stream(api.StreamConfig(name="BENCH_FLOOR", subjects=["floor.>"]))
        kv = await js.create_key_value(bucket="bench_floor")
        await js.add_consumer(
            "BENCH_FLOOR",
            api.ConsumerConfig(durable_name="floor", ack_policy=api.AckPolicy.EXPLICIT),
        )
        sub = await js.pull_subscribe_bind("floor", "BENCH_FLOOR")
        payload = b'{"name":"floor","category":"City","description":"x"}' * 2
        samples = []
        for i in range(n):
            started = time.perf_counter()
            await js.publish(f"floor.{i}", payload)
            (msg,) = await sub.fetch(1, timeout=5)
            await kv.put(f"k{i}", payload)
            await msg.ack_sync()
            samples.append(time.perf_counter() - started)
        await sub.unsubscribe()
        return samples
    finally:
        await nc.close()
