"""A computed view (the user summary) against real KV: inputs brought up to date by the
runner itself, every input loaded, and a record from older inputs never replacing a newer."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from nats.js import JetStreamContext

from contracts.domain import EventMeta
from contracts.events import StoredEvent
from contracts.views import Record, ViewBuckets
from domains.identity.events import ProfileUpdated, UserRegistered
from domains.posts.events import PostDeleted, PostEdited, PostWritten
from domains.posts.summary import SUMMARIES
from domains.videos.events import VideoViewed
from reactor.views import ViewWriter

AT = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


class History:
    """Events as the store would hand them: in order, each with its position."""

    def __init__(self) -> None:
        self.user = uuid.uuid4().hex[:16]
        self.seq = 0
        self.events: list[StoredEvent] = []

    def add(self, event: Any, aggregate: str, aggregate_id: str) -> StoredEvent:
        self.seq += 1
        meta = EventMeta(aggregate, aggregate_id, self.seq, AT, type(event).__name__, "c", "c", "s")
        stored = StoredEvent(event, meta)
        self.events.append(stored)
        return stored


@pytest.fixture
def buckets(js: JetStreamContext) -> ViewBuckets:
    return ViewBuckets(js, 1)


async def summary_of(buckets: ViewBuckets, user: str) -> Any:
    record = await buckets.record(SUMMARIES.name, user)
    return None if record is None else msgspec.json.decode(record.state)


async def test_a_summary_is_made_from_every_input_the_runner_brings_up_to_date(
    buckets: ViewBuckets,
) -> None:
    h = History()
    h.add(UserRegistered("a@x.org", "Ada", "$h"), "user", h.user)
    h.add(PostWritten(h.user, "One", "a b c"), "post", "p1")
    h.add(PostWritten(h.user, "Two", "d e"), "post", "p2")
    h.add(PostEdited(h.user, "Two!", "d e f g"), "post", "p2")
    h.add(PostWritten(h.user, "Three", "h"), "post", "p3")
    h.add(PostDeleted(h.user), "post", "p3")
    h.add(VideoViewed("v1", h.user), "video", "vid1")
    h.add(VideoViewed("v2", None), "video", "vid1")  # anonymous: nobody's summary
    h.add(ProfileUpdated("Ada L.", "", "a@x.org"), "user", h.user)
    writer = ViewWriter()
    # No inline view was written (as if the reactor had not got there yet): the
    # runner brings the summary's inputs up to date before it computes.
    states = await writer.recompute(buckets, SUMMARIES, h.events)
    assert set(states) == {h.user}
    summary = await summary_of(buckets, h.user)
    assert summary["display_name"] == "Ada L."
    assert (summary["post_count"], summary["total_words"]) == (2, 3 + 4)
    assert summary["latest_post"]["title"] == "Two!"
    assert summary["videos_watched"] == 1
    assert summary["position"] == h.seq  # the last event its inputs reflect
    assert await buckets.exists("posts_by_author", f"{h.user}.p1")
    assert not await buckets.exists("posts_by_author", f"{h.user}.p3")  # removed, checkpoint kept


async def test_the_same_events_again_change_nothing(buckets: ViewBuckets) -> None:
    h = History()
    h.add(UserRegistered("b@x.org", "Bo", "$h"), "user", h.user)
    h.add(PostWritten(h.user, "One", "a b"), "post", "p1")
    writer = ViewWriter()
    await writer.recompute(buckets, SUMMARIES, h.events)
    first = await buckets.record(SUMMARIES.name, h.user)
    await ViewWriter().recompute(buckets, SUMMARIES, h.events)  # a redelivery, another runner
    assert await buckets.record(SUMMARIES.name, h.user) == first


async def test_a_record_made_from_older_inputs_does_not_replace_a_newer_one(
    buckets: ViewBuckets,
) -> None:
    h = History()
    h.add(UserRegistered("c@x.org", "Cy", "$h"), "user", h.user)
    h.add(PostWritten(h.user, "One", "a b"), "post", "p1")
    writer = ViewWriter()
    await writer.recompute(buckets, SUMMARIES, h.events)
    newest = await buckets.record(SUMMARIES.name, h.user)
    assert newest is not None
    # A slow runner that had read only the user's registration writes last.
    stale_state = msgspec.json.encode({**msgspec.json.decode(newest.state), "post_count": 0})
    stale = Record(1, msgspec.Raw(stale_state), inputs=1)
    kv = await buckets.bucket(SUMMARIES.name)
    kept = await writer._keep_newer(kv, SUMMARIES, h.user, stale)
    assert kept.post_count == 1
    assert await buckets.record(SUMMARIES.name, h.user) == newest


class _CountingBucket:
    def __init__(self, kv: Any, view: str, gets: Counter[str]) -> None:
        self._kv, self._view, self._gets = kv, view, gets

    async def get(self, key: str) -> Any:
        self._gets[self._view] += 1
        return await self._kv.get(key)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._kv, name)


class CountingBuckets(ViewBuckets):
    """The buckets, each counting the records read from it."""

    def __init__(self, js: JetStreamContext) -> None:
        super().__init__(js, 1)
        self.gets: Counter[str] = Counter()

    async def bucket(self, view: str) -> Any:
        return _CountingBucket(await super().bucket(view), view, self.gets)


async def test_a_runner_reads_the_inputs_it_has_seen_from_memory(js: JetStreamContext) -> None:
    """A summary read every post of its user from KV at each change: O(posts) reads per
    post. A runner's writer follows every event, so what it remembers is up to date: it
    reads only the posts it has not seen. A plain writer (no runner) still reads all."""
    buckets = CountingBuckets(js)
    h = History()
    h.add(UserRegistered("b@x.org", "Bo", "$h"), "user", h.user)
    for n in range(20):
        h.add(PostWritten(h.user, f"Post {n}", "a b"), "post", f"p{n}")
    runner = ViewWriter(follows=True)
    await runner.recompute(buckets, SUMMARIES, h.events)
    buckets.gets.clear()
    await runner.recompute(
        buckets, SUMMARIES, [h.add(PostWritten(h.user, "New", "c"), "post", "n1")]
    )
    assert buckets.gets["posts_by_author"] == 1  # the new post's own record, as it applies it
    assert (await summary_of(buckets, h.user))["post_count"] == 21

    buckets.gets.clear()
    plain = ViewWriter()
    await plain.recompute(
        buckets, SUMMARIES, [h.add(PostWritten(h.user, "Newer", "d"), "post", "n2")]
    )
    assert buckets.gets["posts_by_author"] >= 22  # every post
    assert (await summary_of(buckets, h.user))["post_count"] == 22


async def test_a_runner_that_may_have_missed_events_reads_again(js: JetStreamContext) -> None:
    """Events handled by another reactor while this one did not hold the lease changed
    records behind its memory: a runner forgets what it remembers when it starts."""
    buckets = ViewBuckets(js, 1)
    h = History()
    h.add(UserRegistered("c@x.org", "Cy", "$h"), "user", h.user)
    h.add(PostWritten(h.user, "One", "a b c"), "post", "p1")
    runner = ViewWriter(follows=True)
    await runner.recompute(buckets, SUMMARIES, h.events)
    # Another reactor's runner handles an edit meanwhile.
    edit = h.add(PostEdited(h.user, "One", "a b c d e"), "post", "p1")
    await ViewWriter(follows=True).recompute(buckets, SUMMARIES, [edit])
    runner.forget()  # as the job does at each start
    await runner.recompute(
        buckets, SUMMARIES, [h.add(PostWritten(h.user, "Two", "f"), "post", "p2")]
    )
    assert (await summary_of(buckets, h.user))["total_words"] == 5 + 1
