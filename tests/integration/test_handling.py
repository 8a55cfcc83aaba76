"""One command start to outcome (`reactor.handling`), in-process against a real nats-server."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import msgspec
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext

from contracts.domain import Rejection, Unique, View
from contracts.events import StoredEvent
from contracts.registry import Registry
from contracts.topology import RESERVATIONS_BUCKET, create_view_buckets, event_subject
from contracts.views import ViewBuckets
from domains import DOMAINS
from domains.accounting.commands import ChargeAccount, OpenAccount
from domains.shipments.commands import CreateShipment, DeliverShipment, ShipShipment
from domains.videos.commands import PublishVideo, RecordViewing
from reactor.eventstore import EventStore
from reactor.handling import CommandHandler, Poison
from reactor.reservations import Reservations
from reactor.views import ViewWriter
from tests.conftest import REGISTRY
from tests.domains import memos
from tests.domains.memos import StampMemo, WriteMemo
from tests.helpers import (
    command_handler,
    envelope,
    event_types,
    make_command,
    payload_of,
    unique_name,
    view_state,
)


@pytest.fixture
async def handler(js: JetStreamContext) -> CommandHandler:
    return await command_handler(js)


async def test_a_location_is_one_event_and_its_record(
    handler: CommandHandler, js: JetStreamContext
) -> None:
    command = make_command()
    notice = await handler.handle(command)
    assert notice.status == "succeeded"
    assert notice.resource is not None
    assert notice.resource["name"] == payload_of(command).name
    assert notice.resource_url == f"/api/locations/{command.aggregate_id}"
    assert notice.actions[0].href == f"/locations/{command.aggregate_id}"
    subject = event_subject("location", command.aggregate_id)
    assert await event_types(js, subject) == [(subject, "LocationCreated")]
    assert notice.position is not None
    assert notice.position > 0
    assert await view_state(js, "locations", command.aggregate_id) == notice.resource


async def test_handling_a_command_twice_appends_nothing_more(
    handler: CommandHandler, js: JetStreamContext
) -> None:
    command = make_command()
    first = await handler.handle(command)
    again = await handler.handle(command)  # a redelivery
    assert again.status == "succeeded"
    assert again.resource == first.resource
    assert again.position == first.position
    subject = event_subject("location", command.aggregate_id)
    assert len(await event_types(js, subject)) == 1


async def test_a_name_is_taken_case_insensitively(handler: CommandHandler) -> None:
    name = unique_name()
    assert (await handler.handle(make_command(name))).status == "succeeded"
    refused = await handler.handle(make_command(f" {name.upper()}"))
    assert refused.status == "failed"
    assert refused.error is not None
    assert refused.error.status == 409


async def test_racing_commands_for_one_name_create_exactly_one(
    handler: CommandHandler, js: JetStreamContext
) -> None:
    name = unique_name()
    commands = [make_command(name) for _ in range(8)]
    notices = await asyncio.gather(*(handler.handle(c) for c in commands))
    assert [n.status for n in notices].count("succeeded") == 1
    winner = next(c for c, n in zip(commands, notices, strict=True) if n.status == "succeeded")
    for command in commands:
        subject = event_subject("location", command.aggregate_id)
        assert len(await event_types(js, subject)) == (1 if command is winner else 0)


async def test_a_command_on_a_missing_aggregate_gets_the_domains_problem(
    handler: CommandHandler,
) -> None:
    stamp = envelope(StampMemo("x"), aggregate_id="no-such-memo")
    notice = await handler.handle(stamp)
    assert notice.status == "failed"
    assert notice.error is not None
    assert (notice.error.status, notice.error.type) == (404, "/problems/no-memo")
    assert notice.position == 0


async def test_a_refused_command_releases_what_it_reserved(
    nc: Client, js: JetStreamContext
) -> None:
    unique = Unique("memo-stamp", lambda c: c.stamp, lambda c: Rejection(409, "Taken", "taken"))
    specs = tuple(
        dataclasses.replace(s, unique=unique) if s.name == "StampMemo" else s
        for s in memos.DOMAIN.commands
    )
    registry = Registry([dataclasses.replace(memos.DOMAIN, commands=specs)])
    kv = await js.key_value(RESERVATIONS_BUCKET)
    buckets = ViewBuckets(js, 1)
    handler = CommandHandler(registry, EventStore(nc, registry), Reservations(kv), lambda: buckets)
    stamp = unique_name("stamp")
    refused = await handler.handle(envelope(StampMemo(stamp), aggregate_id="no-such-memo"))
    assert refused.error is not None
    assert refused.error.status == 404  # decide refused it, after the claim was made
    assert await Reservations(kv).owner("memo-stamp", stamp) is None  # and given back


async def test_conflicting_commands_on_one_aggregate_each_win_once(
    handler: CommandHandler, js: JetStreamContext
) -> None:
    write = envelope(WriteMemo("memo"))
    await handler.handle(write)
    stamps = [
        envelope(StampMemo(s), aggregate_id=write.aggregate_id) for s in ("a", "b", "a", "c", "b")
    ]
    notices = await asyncio.gather(*(handler.handle(c) for c in stamps))
    assert sorted(n.status for n in notices) == [
        "failed",
        "failed",
        "succeeded",
        "succeeded",
        "succeeded",
    ]
    record = await view_state(js, "memos", write.aggregate_id)
    assert sorted(record["stamps"]) == ["a", "b", "c"]  # every appended event in the view, once
    assert all(n.error is None or n.error.status == 409 for n in notices)


async def test_a_decision_of_two_events_reaches_the_inline_view_whole(
    handler: CommandHandler, js: JetStreamContext
) -> None:
    write = envelope(WriteMemo("filed", folder="work"))
    notice = await handler.handle(write)
    expected = {"id": write.aggregate_id, "text": "filed", "folder": "work", "stamps": []}
    assert msgspec.json.decode(msgspec.json.encode(notice.resource)) == expected
    assert await view_state(js, "memos", write.aggregate_id) == expected
    subject = event_subject("memo", write.aggregate_id)
    assert [t for _, t in await event_types(js, subject)] == ["MemoWritten", "MemoFiled"]


class CountingWriter(ViewWriter):
    """The real writer, keeping the view and key of every record it brings up to date."""

    def __init__(self) -> None:
        super().__init__()
        self.applied: list[tuple[str, str]] = []

    async def _apply_key(self, kv: Any, bucket: str, view: View, key: str, *rest: Any) -> Any:
        self.applied.append((view.name, key))
        return await super()._apply_key(kv, bucket, view, key, *rest)


async def test_a_viewing_writes_its_viewers_record_not_every_past_viewers(
    nc: Client, js: JetStreamContext
) -> None:
    """Each viewing brought every signed-in viewer's record of the video up to date: its
    cost grew with the video's viewers. Now the records its event changes, only; a
    viewing told again (its events stored) still makes good its own record."""
    kv = await js.key_value(RESERVATIONS_BUCKET)
    buckets = ViewBuckets(js, 1)

    def reactor(writer: ViewWriter) -> CommandHandler:
        store = EventStore(nc, REGISTRY)
        return CommandHandler(REGISTRY, store, Reservations(kv), lambda: buckets, writer=writer)

    writer = CountingWriter()
    handler = reactor(writer)
    video = envelope(PublishVideo("owner", "Cats", "https://example.org/cats.mp4"))
    assert (await handler.handle(video)).status == "succeeded"
    for n in range(5):
        viewing = envelope(RecordViewing(f"v{n}", f"viewer{n}"), aggregate_id=video.aggregate_id)
        assert (await handler.handle(viewing)).status == "succeeded"
    writer.applied.clear()
    last = envelope(RecordViewing("v5", "viewer5"), aggregate_id=video.aggregate_id)
    told = await handler.handle(last)
    assert told.status == "succeeded"
    assert told.resource is not None
    assert told.resource["views"] == 6
    mine = f"viewer5.{video.aggregate_id}"
    assert sorted(writer.applied) == [("videos", video.aggregate_id), ("viewings", mine)]
    await (await buckets.bucket("viewings")).delete(mine)  # a crash came before its record
    again = CountingWriter()  # the reactor it is delivered to next
    assert (await reactor(again).handle(last)).status == "succeeded"
    assert sorted(again.applied) == [("videos", video.aggregate_id), ("viewings", mine)]
    assert (await view_state(js, "viewings", mine))["count"] == 1


async def test_unknown_types_and_bad_payloads_are_poison(handler: CommandHandler) -> None:
    command = make_command()
    with pytest.raises(Poison, match="unknown command type"):
        handler.payload(msgspec.structs.replace(command, type="Nonsense"))
    with pytest.raises(Poison):
        handler.payload(msgspec.structs.replace(command, payload=msgspec.Raw(b'{"name": 5}')))


async def test_a_handler_behind_another_decides_on_the_stored_state(
    nc: Client, js: JetStreamContext
) -> None:
    """Two reactors: what one remembers of an aggregate goes stale when the other acts on it."""
    buckets = ViewBuckets(js, 1)
    reservations = Reservations(await js.key_value(RESERVATIONS_BUCKET))
    here, there = (
        CommandHandler(REGISTRY, EventStore(nc, REGISTRY), reservations, lambda: buckets)
        for _ in range(2)
    )
    create = envelope(CreateShipment("acct", "GB", "GB", 100))
    assert (await here.handle(create)).status == "succeeded"  # `here` remembers it: created
    ship = envelope(ShipShipment(), aggregate_id=create.aggregate_id)
    assert (await there.handle(ship)).status == "succeeded"
    # On what `here` remembers, a delivery is refused (not shipped); it loads before saying so.
    deliver = envelope(DeliverShipment(), aggregate_id=create.aggregate_id)
    delivered = await here.handle(deliver)
    assert delivered.status == "succeeded", delivered.error
    # And an append decided on a stale memory is refused by the store, then decided again.
    write = envelope(WriteMemo("shared"))
    await here.handle(write)
    await here.handle(envelope(StampMemo("a"), aggregate_id=write.aggregate_id))
    await there.handle(envelope(StampMemo("b"), aggregate_id=write.aggregate_id))
    repeat = await here.handle(envelope(StampMemo("b"), aggregate_id=write.aggregate_id))
    assert repeat.error is not None
    assert repeat.error.status == 409
    assert (await view_state(js, "memos", write.aggregate_id))["stamps"] == ["a", "b"]


class OneBehind(EventStore):
    """The real store on a replicated stream, every load answered as by a replica
    that has not applied the aggregate's last event yet (the leader has it)."""

    def __init__(self, nc: Client) -> None:
        super().__init__(nc, REGISTRY, replicated=True)

    async def load(self, aggregate: str, aggregate_id: str) -> list[StoredEvent]:
        return (await super().load(aggregate, aggregate_id))[:-1]


async def lagging_handler(nc: Client, js: JetStreamContext) -> CommandHandler:
    return await command_handler(js, OneBehind(nc))


async def test_a_refusal_is_not_decided_on_a_load_behind_the_leader(
    handler: CommandHandler, nc: Client, js: JetStreamContext
) -> None:
    create = envelope(CreateShipment("acct", "GB", "GB", 100))
    assert (await handler.handle(create)).status == "succeeded"
    # Loaded one behind it has no shipment: the leader's latest says otherwise.
    ship = envelope(ShipShipment(), aggregate_id=create.aggregate_id)
    shipped = await (await lagging_handler(nc, js)).handle(ship)
    assert shipped.status == "succeeded", shipped.error


async def test_after_a_conflict_the_decision_is_made_on_the_leaders_latest(
    handler: CommandHandler, nc: Client, js: JetStreamContext
) -> None:
    opened = envelope(OpenAccount("holder"))
    assert (await handler.handle(opened)).status == "succeeded"
    first = envelope(ChargeAccount(100, "first"), aggregate_id=opened.aggregate_id)
    assert (await handler.handle(first)).status == "succeeded"
    # Loaded one behind, the charge is appended on the opening alone: a conflict.
    # A reload through a replica as far behind would conflict again, every time.
    second = envelope(ChargeAccount(250, "second"), aggregate_id=opened.aggregate_id)
    charged = await (await lagging_handler(nc, js)).handle(second)
    assert charged.status == "succeeded", charged.error
    subject = event_subject("account", opened.aggregate_id)
    assert [t for _, t in await event_types(js, subject)] == [
        "AccountOpened",
        "AccountCharged",
        "AccountCharged",
    ]


async def test_a_command_looks_up_only_the_events_it_changes_not_the_aggregates_history(
    nc: Client, js: JetStreamContext
) -> None:
    """Each command computed the view key of every event of its aggregate, per inline
    view: a viewing of a much-watched video cost in proportion to its viewings. Now
    the handler keeps the keys it found (an index grown by each command's events)."""
    looked_up: list[int] = []

    def counted(event: Any, meta: Any) -> str:
        looked_up.append(meta.seq)
        return str(meta.aggregate_id)

    counting = dataclasses.replace(memos.MEMOS, key=counted)
    domain = dataclasses.replace(
        memos.DOMAIN, views=tuple(counting if v is memos.MEMOS else v for v in memos.DOMAIN.views)
    )
    registry = Registry([*DOMAINS, domain])
    buckets = ViewBuckets(js, 1)
    reservations = Reservations(await js.key_value(RESERVATIONS_BUCKET))
    handler = CommandHandler(registry, EventStore(nc, registry), reservations, lambda: buckets)
    write = envelope(WriteMemo("long"))
    assert (await handler.handle(write)).status == "succeeded"
    for n in range(30):
        stamp = envelope(StampMemo(f"s{n}"), aggregate_id=write.aggregate_id)
        assert (await handler.handle(stamp)).status == "succeeded"
    looked_up.clear()
    last = envelope(StampMemo("last"), aggregate_id=write.aggregate_id)
    told = await handler.handle(last)
    assert told.resource is not None
    assert len(told.resource["stamps"]) == 31
    assert set(looked_up) == {told.position}  # its own event's key; no past one's
    assert len((await view_state(js, "memos", write.aggregate_id))["stamps"]) == 31


async def test_a_command_that_changes_nothing_brings_only_its_resource_up_to_date(
    nc: Client, js: JetStreamContext
) -> None:
    """A viewing counted already (a retry) changes nothing: it read every past viewer's
    record of the video, a KV read each. Now it makes good the video's record, which
    its notice carries, and leaves the viewers' records alone."""
    kv = await js.key_value(RESERVATIONS_BUCKET)
    buckets = ViewBuckets(js, 1)

    def reactor(writer: ViewWriter) -> CommandHandler:
        store = EventStore(nc, REGISTRY)
        return CommandHandler(REGISTRY, store, Reservations(kv), lambda: buckets, writer=writer)

    handler = reactor(ViewWriter())
    video = envelope(PublishVideo("owner", "Cats", "https://example.org/cats.mp4"))
    assert (await handler.handle(video)).status == "succeeded"
    for n in range(5):
        viewing = envelope(RecordViewing(f"v{n}", f"viewer{n}"), aggregate_id=video.aggregate_id)
        assert (await handler.handle(viewing)).status == "succeeded"
    await (await buckets.bucket("videos")).delete(video.aggregate_id)  # left behind
    writer = CountingWriter()  # the reactor the retry is delivered to
    retry = envelope(RecordViewing("v4", "viewer4"), aggregate_id=video.aggregate_id)
    told = await reactor(writer).handle(retry)
    assert told.status == "succeeded"
    assert told.resource is not None
    assert told.resource["views"] == 5
    assert writer.applied == [("videos", video.aggregate_id)]
    assert (await view_state(js, "videos", video.aggregate_id))["views"] == 5


async def test_when_one_view_fails_the_others_are_written_before_the_command_ends(
    nc: Client, js: JetStreamContext
) -> None:
    """A command's inline views are written together. One that failed ended the command
    while the others' writes were still in flight, detached: the redelivery could race
    them. Now every write has ended, done or failed, when the first error is raised."""

    class Audit(msgspec.Struct, frozen=True):
        stamps: int

    def audit(record: Audit | None, event: Any, meta: Any) -> Audit:
        if event.stamp == "boom":
            raise ValueError("this view cannot take a boom")
        return Audit((record.stamps if record else 0) + 1)

    audits = View("memo_audits", Audit, (memos.MemoStamped,), audit, inline=True)
    domain = dataclasses.replace(memos.DOMAIN, views=(*memos.DOMAIN.views, audits))
    registry = Registry([*DOMAINS, domain])
    buckets = ViewBuckets(js, 1)
    await create_view_buckets(js, [audits.name], 1)
    reservations = Reservations(await js.key_value(RESERVATIONS_BUCKET))
    handler = CommandHandler(registry, EventStore(nc, registry), reservations, lambda: buckets)
    write = envelope(WriteMemo("audited"))
    assert (await handler.handle(write)).status == "succeeded"
    ok = await handler.handle(envelope(StampMemo("ok"), aggregate_id=write.aggregate_id))
    assert ok.status == "succeeded"  # both records remembered: the next fails at once
    with pytest.raises(ValueError, match="cannot take a boom"):
        await handler.handle(envelope(StampMemo("boom"), aggregate_id=write.aggregate_id))
    writing = [
        task
        for task in asyncio.all_tasks()
        if not task.done() and "_inline_views" in task.get_coro().__qualname__  # type: ignore[union-attr]
    ]
    assert writing == []  # the memo's record was written (or failed), not left going
    assert (await view_state(js, "memos", write.aggregate_id))["stamps"] == ["ok", "boom"]
