"""IdempotencyKeys against a real KV bucket (with a clock of our own for staleness)."""

from __future__ import annotations

import uuid
from types import SimpleNamespace
from typing import Any, cast

import pytest
from nats.js import JetStreamContext

from api.commands import _let_go
from api.idempotency import (
    IN_FLIGHT_FOR,
    STALE_AFTER,
    IdempotencyKeys,
    InFlight,
    Mismatch,
    Replay,
    Started,
    StoredResponse,
    lease_for,
)
from contracts.topology import IDEMPOTENCY_BUCKET

RESPONSE = StoredResponse(202, {"Location": "/api/commands/x"}, b"{}")


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


async def keys(js: JetStreamContext, clock: Clock | None = None) -> IdempotencyKeys:
    return IdempotencyKeys(await js.key_value(IDEMPOTENCY_BUCKET), clock or Clock())


async def test_first_use_starts_then_replays_the_finished_response(js: JetStreamContext) -> None:
    store = await keys(js)
    session, key = uuid.uuid4().hex, "k"
    started = await store.begin(session, key, "print", "c1")
    assert isinstance(started, Started)
    assert started.command_id == "c1"
    assert isinstance(await store.begin(session, key, "print", "c2"), InFlight)
    await store.finish(started, RESPONSE)
    assert await store.begin(session, key, "print", "c3") == Replay(RESPONSE)
    assert isinstance(await store.begin(session, key, "other print", "c4"), Mismatch)


async def test_beginning_again_with_the_same_command_id_is_the_same_start(
    js: JetStreamContext,
) -> None:
    """A create whose ack was lost is asked again: the record it stored is its own."""
    store = await keys(js)
    session = uuid.uuid4().hex
    first = await store.begin(session, "k", "print", "c1")
    again = await store.begin(session, "k", "print", "c1")
    assert isinstance(first, Started)
    assert again == first
    assert isinstance(await store.begin(session, "k", "print", "c2"), InFlight)


async def test_released_key_can_be_used_again(js: JetStreamContext) -> None:
    store = await keys(js)
    session = uuid.uuid4().hex
    first = await store.begin(session, "k", "print", "c1")
    assert isinstance(first, Started)
    assert await store.release(first)
    again = await store.begin(session, "k", "print", "c2")
    assert isinstance(again, Started)
    assert again.command_id == "c2"


async def test_a_stale_in_flight_key_is_taken_over_with_its_command_id(
    js: JetStreamContext,
) -> None:
    clock = Clock()
    store = await keys(js, clock)
    session = uuid.uuid4().hex
    first = await store.begin(session, "k", "print", "c1")
    assert isinstance(first, Started)
    clock.now += STALE_AFTER + 1  # the first request died without answering
    takeover = await store.begin(session, "k", "print", "c2")
    assert isinstance(takeover, Started)
    assert takeover.taken_over
    assert takeover.command_id == "c1"
    assert isinstance(await store.begin(session, "k", "print", "c3"), InFlight)


async def test_a_key_is_in_flight_for_as_long_as_its_request_can_take(
    js: JetStreamContext,
) -> None:
    """A request that could not hand its key over (NATS gone under the answer) holds
    it for its own lease only: IN_FLIGHT_FOR, plus its Prefer wait. A record written
    before leases were kept is in flight for STALE_AFTER."""
    clock = Clock()
    store = await keys(js, clock)
    session = uuid.uuid4().hex
    plain = await store.begin(session, "plain", "print", "c1", lease_for(None))
    waiting = await store.begin(session, "waiting", "print", "c2", lease_for(30))
    assert isinstance(plain, Started)
    assert isinstance(waiting, Started)
    clock.now += IN_FLIGHT_FOR + 1
    taken = await store.begin(session, "plain", "print", "c3")
    assert isinstance(taken, Started)
    assert (taken.taken_over, taken.command_id) == (True, "c1")
    assert isinstance(await store.begin(session, "waiting", "print", "c4"), InFlight)
    clock.now += 30
    assert isinstance(await store.begin(session, "waiting", "print", "c5"), Started)

    old = await store.begin(session, "old", "print", "c6")
    assert isinstance(old, Started)
    record = b'{"fingerprint":"print","command_id":"c6","started_at":%f}' % clock.now
    await store._kv.update(old.key, record, last=old.revision)
    clock.now += IN_FLIGHT_FOR + 1
    assert isinstance(await store.begin(session, "old", "print", "c7"), InFlight)
    clock.now += STALE_AFTER
    assert isinstance(await store.begin(session, "old", "print", "c8"), Started)


async def test_a_key_handed_over_is_taken_over_at_once_with_its_command_id(
    js: JetStreamContext,
) -> None:
    """A publish that was not acknowledged may have stored its command: the retry is
    that command (its id), not a second one, and need not wait for the record to go stale."""
    store = await keys(js)
    session = uuid.uuid4().hex
    first = await store.begin(session, "k", "print", "c1")
    assert isinstance(first, Started)
    assert await store.hand_over(first)
    assert isinstance(await store.begin(session, "k", "other print", "c2"), Mismatch)
    retry = await store.begin(session, "k", "print", "c3")
    assert isinstance(retry, Started)
    assert retry.taken_over
    assert retry.command_id == "c1"
    assert isinstance(await store.begin(session, "k", "print", "c4"), InFlight)
    # The first request's record is no longer its own: neither hand-over nor release
    # touches what the retry now holds.
    assert not await store.hand_over(first)
    assert not await store.release(first)
    await store.finish(retry, RESPONSE)
    assert await store.begin(session, "k", "print", "c5") == Replay(RESPONSE)


@pytest.mark.parametrize(
    ("taken_over", "maybe_stored", "same_command"),
    [(False, False, False), (False, True, True), (True, False, True)],
    ids=["nothing-accepted", "publish-unacknowledged", "key-taken-over"],
)
async def test_a_request_answered_with_a_problem_lets_its_key_go_as_its_command_may_exist(
    js: JetStreamContext, taken_over: bool, maybe_stored: bool, same_command: bool
) -> None:
    """Freed only when nothing was accepted; else the retry gets the same command id."""
    clock = Clock()
    store = await keys(js, clock)
    services = cast("Any", SimpleNamespace(idempotency=store))
    session = uuid.uuid4().hex
    started = await store.begin(session, "k", "print", "c1")
    if taken_over:  # the request holding it died; this one took it over
        clock.now += STALE_AFTER + 1
        started = await store.begin(session, "k", "print", "c2")
    assert isinstance(started, Started)
    assert started.taken_over == taken_over
    await _let_go(services, started, maybe_stored=maybe_stored)
    retry = await store.begin(session, "k", "print", "c3")
    assert isinstance(retry, Started)
    assert retry.command_id == ("c1" if same_command else "c3")


async def test_keys_are_scoped_by_session(js: JetStreamContext) -> None:
    store = await keys(js)
    a = await store.begin(uuid.uuid4().hex, "same", "print", "c1")
    b = await store.begin(uuid.uuid4().hex, "same", "print", "c2")
    assert isinstance(a, Started)
    assert isinstance(b, Started)


async def test_a_key_sent_without_a_cookie_is_the_keys_alone_and_found_by_its_answers_session(
    js: JetStreamContext,
) -> None:
    """A request without a session cookie (a new session each time) scopes its key by the
    key alone: its cookieless retry finds it, and so does a retry with the cookie its
    answer gave (the answer, a 503 say, came); another session's key is its own."""
    store = await keys(js)
    key = uuid.uuid4().hex
    given, other = uuid.uuid4().hex, uuid.uuid4().hex
    first = await store.begin(given, key, "print", "c1", cookie=False)
    assert isinstance(first, Started)
    assert isinstance(
        await store.begin(uuid.uuid4().hex, key, "print", "c2", cookie=False), InFlight
    )
    assert isinstance(await store.begin(given, key, "print", "c3"), InFlight)  # its cookie now
    assert await store.hand_over(first)  # the publish was not acknowledged: a 503
    retry = await store.begin(given, key, "print", "c4")
    assert isinstance(retry, Started)
    assert retry.taken_over
    assert retry.command_id == "c1"
    assert isinstance(await store.begin(given, key, "print", "c5"), InFlight)
    await store.finish(retry, RESPONSE)
    assert await store.begin(given, key, "print", "c6") == Replay(RESPONSE)
    assert await store.begin(uuid.uuid4().hex, key, "print", "c7", cookie=False) == Replay(RESPONSE)
    assert isinstance(
        await store.begin(uuid.uuid4().hex, key, "other", "c8", cookie=False), Mismatch
    )
    # A session other than the one the first answer gave: the key is its own.
    mine = await store.begin(other, key, "other print", "c9")
    assert isinstance(mine, Started)
    assert mine.command_id == "c9"
