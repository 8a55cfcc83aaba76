"""The lag by domain, counted by the server from the reactor consumer's ack floor."""

from __future__ import annotations

from datetime import UTC, datetime

from nats.js import JetStreamContext

from contracts.lag import measure
from contracts.topology import COMMANDS_STREAM, REACTOR_CONSUMER, command_subject
from reactor.consumer import consumer_config
from reactor.status import report
from tests.conftest import REGISTRY
from tests.helpers import make_command, publish_command

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


async def test_each_domain_counts_its_commands_after_the_ack_floor(
    fresh_js: JetStreamContext,
) -> None:
    await fresh_js.add_consumer(COMMANDS_STREAM, consumer_config())
    before = await measure(fresh_js, REGISTRY, T0)
    assert set(before.by_domain.values()) == {0}
    assert {"locations", "accounting", "chat"} <= set(before.by_domain)

    for _ in range(3):
        await publish_command(fresh_js, make_command())
    await fresh_js.publish(command_subject("OpenAccount", "a" * 32), b"{}")
    lag = await measure(fresh_js, REGISTRY, T0)
    assert lag.by_domain["locations"] == 3
    assert lag.by_domain["accounting"] == 1
    assert lag.by_domain["shipments"] == 0
    assert lag.ack_floor == 0

    # The reactor takes the first two locations and finishes them: the floor moves.
    sub = await fresh_js.pull_subscribe_bind(REACTOR_CONSUMER, COMMANDS_STREAM)
    first, second, third, fourth = await sub.fetch(4, timeout=2)
    await first.ack_sync()
    await second.ack_sync()
    lag = await measure(fresh_js, REGISTRY, T0)
    assert lag.ack_floor == 2
    assert lag.by_domain["locations"] == 1  # the third, in flight
    assert lag.by_domain["accounting"] == 1
    # Done out of order (the account before the third location): still counted after
    # the floor, as Kafka counts from the committed offset.
    await fourth.ack_sync()
    assert (await measure(fresh_js, REGISTRY, T0)).by_domain["accounting"] == 1
    await third.ack_sync()
    done = await measure(fresh_js, REGISTRY, T0)
    assert done.ack_floor == 4
    assert set(done.by_domain.values()) == {0}
    await sub.unsubscribe()
    # The counting consumers are gone again: only the reactor's is left.
    assert [c.name for c in await fresh_js.consumers_info(COMMANDS_STREAM)] == [REACTOR_CONSUMER]


async def test_task_status_shows_the_lag_by_domain(fresh_js: JetStreamContext) -> None:
    await fresh_js.add_consumer(COMMANDS_STREAM, consumer_config())
    await publish_command(fresh_js, make_command())
    lines = await report(fresh_js, REGISTRY)
    (line,) = [line for line in lines if line.startswith("  lag by domain")]
    assert "locations 1" in line
    assert "accounting 0" in line
