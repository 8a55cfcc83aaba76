"""LocationsProjection against real KV buckets."""

from __future__ import annotations

import asyncio

from nats.js import JetStreamContext

from contracts.projections import open_buckets
from contracts.resources import location_decoder
from contracts.topology import (
    LOCATION_NAMES_BUCKET,
    LOCATIONS_BUCKET,
    name_key,
)
from reactor.handlers import Created, Rejected
from reactor.projections import LocationsProjection
from tests.helpers import category_total, make_command, unique_name


async def projection(js: JetStreamContext) -> LocationsProjection:
    buckets = await open_buckets(js, 1)
    return LocationsProjection(lambda: buckets)


async def test_create_writes_the_location_and_claims_the_name(js: JetStreamContext) -> None:
    command = make_command()
    decision = await (await projection(js)).apply(command)
    assert isinstance(decision, Created)
    stored = await (await js.key_value(LOCATIONS_BUCKET)).get(decision.location.id)
    assert stored.value is not None
    assert location_decoder.decode(stored.value) == decision.location
    claim = await (await js.key_value(LOCATION_NAMES_BUCKET)).get(name_key(command.payload.name))
    assert claim.value == decision.location.id.encode()


async def test_applying_the_same_command_twice_changes_nothing(js: JetStreamContext) -> None:
    proj = await projection(js)
    command = make_command()
    first = await proj.apply(command)
    kv = await js.key_value(LOCATIONS_BUCKET)
    assert isinstance(first, Created)
    second = await proj.apply(command)
    assert second == first
    entry = await kv.get(first.location.id)
    assert entry.value is not None
    assert location_decoder.decode(entry.value) == first.location
    names = await js.key_value(LOCATION_NAMES_BUCKET)
    assert (await names.get(name_key(command.payload.name))).value == first.location.id.encode()


async def test_a_name_is_taken_case_insensitively(js: JetStreamContext) -> None:
    proj = await projection(js)
    name = unique_name()
    assert isinstance(await proj.apply(make_command(name)), Created)
    decision = await proj.apply(make_command(name.upper()))
    assert isinstance(decision, Rejected)
    assert decision.problem.status == 409


async def test_racing_commands_for_one_name_create_exactly_one(js: JetStreamContext) -> None:
    proj = await projection(js)
    name = unique_name()
    decisions = await asyncio.gather(*(proj.apply(make_command(name)) for _ in range(8)))
    assert sum(isinstance(d, Created) for d in decisions) == 1
    assert sum(isinstance(d, Rejected) for d in decisions) == 7


async def test_a_location_is_counted_once_however_often_applied(js: JetStreamContext) -> None:
    proj = await projection(js)
    before, _ = await category_total(js, "City")
    command = make_command()
    await proj.apply(command)
    await proj.apply(command)  # a redelivery before the notice was stored
    count, pending = await category_total(js, "City")
    assert count == before + 1
    assert command.command_id in pending
    await proj.settle(command)
    await proj.settle(command)
    count, pending = await category_total(js, "City")
    assert count == before + 1
    assert command.command_id not in pending


async def test_concurrent_increments_lose_nothing(js: JetStreamContext) -> None:
    proj = await projection(js)
    commands = [make_command() for _ in range(40)]
    before, _ = await category_total(js, "City")
    await asyncio.gather(*(proj.apply(c) for c in commands))
    await asyncio.gather(*(proj.settle(c) for c in commands))
    count, pending = await category_total(js, "City")
    assert count == before + 40
    assert not set(pending) & {c.command_id for c in commands}


async def test_a_command_applied_in_full_changes_nothing_when_applied_again(
    js: JetStreamContext,
) -> None:
    """What lets a rebuild and a reactor both apply one command to the same buckets."""
    proj = await projection(js)
    command = make_command()
    first = await proj.apply(command)
    await proj.settle(command)
    before, _ = await category_total(js, "City")
    again = await proj.apply(command)
    await proj.settle(command)
    assert again == first
    assert (await category_total(js, "City"))[0] == before
