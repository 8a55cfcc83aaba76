"""LocationsProjection against real KV buckets."""

from __future__ import annotations

import asyncio

from nats.js import JetStreamContext

from contracts.resources import location_decoder
from contracts.topology import LOCATION_NAMES_BUCKET, LOCATIONS_BUCKET, name_key
from reactor.handlers import Created, Rejected
from reactor.projections import LocationsProjection
from tests.helpers import make_command, unique_name


async def projection(js: JetStreamContext) -> LocationsProjection:
    return LocationsProjection(
        await js.key_value(LOCATIONS_BUCKET), await js.key_value(LOCATION_NAMES_BUCKET)
    )


async def test_create_writes_the_location_and_claims_the_name(js: JetStreamContext) -> None:
    command = make_command()
    decision = await (await projection(js)).create_location(command)
    assert isinstance(decision, Created)
    stored = await (await js.key_value(LOCATIONS_BUCKET)).get(decision.location.id)
    assert stored.value is not None
    assert location_decoder.decode(stored.value) == decision.location
    claim = await (await js.key_value(LOCATION_NAMES_BUCKET)).get(name_key(command.payload.name))
    assert claim.value == decision.location.id.encode()


async def test_applying_the_same_command_twice_changes_nothing(js: JetStreamContext) -> None:
    proj = await projection(js)
    command = make_command()
    first = await proj.create_location(command)
    kv = await js.key_value(LOCATIONS_BUCKET)
    assert isinstance(first, Created)
    second = await proj.create_location(command)
    assert second == first
    entry = await kv.get(first.location.id)
    assert entry.value is not None
    assert location_decoder.decode(entry.value) == first.location
    names = await js.key_value(LOCATION_NAMES_BUCKET)
    assert (await names.get(name_key(command.payload.name))).value == first.location.id.encode()


async def test_a_name_is_taken_case_insensitively(js: JetStreamContext) -> None:
    proj = await projection(js)
    name = unique_name()
    assert isinstance(await proj.create_location(make_command(name)), Created)
    decision = await proj.create_location(make_command(name.upper()))
    assert isinstance(decision, Rejected)
    assert decision.problem.status == 409


async def test_racing_commands_for_one_name_create_exactly_one(js: JetStreamContext) -> None:
    proj = await projection(js)
    name = unique_name()
    decisions = await asyncio.gather(*(proj.create_location(make_command(name)) for _ in range(8)))
    assert sum(isinstance(d, Created) for d in decisions) == 1
    assert sum(isinstance(d, Rejected) for d in decisions) == 7
