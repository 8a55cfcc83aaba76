"""Admission's backlog sampler (api.backlog), on a stand-in for JetStream's consumer info."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from nats.js.api import ConsumerConfig, ConsumerInfo, SequenceInfo

from api.backlog import MAX_RETRY_AFTER, STALE_AFTER, Backlog
from tests.helpers import eventually


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Infos:
    """Answers consumer_info with the next of `answers` (an exception is raised)."""

    answers: Iterator[ConsumerInfo | Exception]
    asked: int = field(default=0)

    async def consumer_info(self, stream: str, consumer: str) -> ConsumerInfo:
        self.asked += 1
        answer = next(self.answers)
        if isinstance(answer, Exception):
            raise answer
        return answer


def info(pending: int, in_flight: int, delivered: int, ack_floor: int = 0) -> ConsumerInfo:
    return ConsumerInfo(
        stream_name="COMMANDS",
        name="reactor",
        config=ConsumerConfig(),
        created=datetime.now(UTC),
        num_pending=pending,
        num_ack_pending=in_flight,
        delivered=SequenceInfo(consumer_seq=delivered, stream_seq=delivered),
        ack_floor=SequenceInfo(consumer_seq=ack_floor, stream_seq=ack_floor),
    )


def test_admission_refuses_at_the_limit_with_the_time_to_get_under_it() -> None:
    clock = Clock()
    backlog = Backlog(cast("Any", None), limit=100, clock=clock)  # figures set by hand
    assert backlog.refusal() is None  # not known yet: admitted
    backlog.waiting, backlog.pace, backlog.sampled_at = 99, 50.0, clock.now
    assert backlog.refusal() is None
    backlog.waiting = 200
    busy = backlog.refusal()
    assert busy is not None
    assert busy.problem.status == 503
    assert busy.problem.type == "/problems/busy"
    assert busy.headers["Retry-After"] == "3"  # 101 to go at 50 a second
    assert busy.problem.detail.endswith("Try again in 3 s.")
    assert backlog.retry_after(100) == 1  # one to go: at least a second
    backlog.pace = 0.0  # no reactor working
    assert backlog.retry_after(200) == MAX_RETRY_AFTER
    backlog.pace = 0.5
    assert backlog.retry_after(200) == MAX_RETRY_AFTER  # capped
    assert Backlog(cast("Any", None), limit=0).refusal() is None  # off


async def test_a_sample_reads_the_backlog_and_the_pace_commands_are_taken_at() -> None:
    clock = Clock()
    # The ack floor stands still (one command waits out a retry's backoff) while
    # the reactors take 50 new commands a second: the pace is theirs.
    infos = Infos(iter([info(300, 20, 1000, 7), info(280, 20, 1050, 7), info(240, 20, 1110, 7)]))
    backlog = Backlog(cast("Any", infos), limit=100, clock=clock)
    await backlog.sample()
    assert backlog.waiting == 320  # not yet delivered + delivered, not done
    assert backlog.pace == 0.0  # one sample: no pace yet
    clock.now += 1.0
    await backlog.sample()
    assert (backlog.waiting, backlog.pace) == (300, 50.0)
    clock.now += 1.0
    await backlog.sample()
    assert (backlog.waiting, backlog.pace) == (260, 55.0)  # smoothed: (50 + 60) / 2
    busy = backlog.refusal()
    assert busy is not None
    assert busy.headers["Retry-After"] == "3"  # 161 to go at 55 a second


async def test_a_stale_sample_refuses_nothing() -> None:
    clock = Clock()
    backlog = Backlog(cast("Any", Infos(iter([info(500, 0, 10)]))), limit=100, clock=clock)
    await backlog.sample()
    assert backlog.refusal() is not None
    clock.now += STALE_AFTER - 0.01
    assert backlog.refusal() is not None  # slow, not stuck: still trusted
    clock.now += 0.02  # the sampler stuck since
    assert backlog.refusal() is None


async def test_the_sampler_outlives_a_failing_sample_and_forgets_what_it_knew() -> None:
    def answers() -> Iterator[ConsumerInfo | Exception]:
        yield info(500, 0, 10)
        while True:
            yield RuntimeError("not a NATS error")

    infos = Infos(answers())
    backlog = Backlog(cast("Any", infos), limit=100, every=0.01)
    await backlog.start()
    try:

        async def forgotten_and_still_asking() -> bool | None:
            return True if backlog.waiting is None and infos.asked >= 5 else None

        await eventually(forgotten_and_still_asking)
        assert backlog.refusal() is None  # not known: admitted
    finally:
        await backlog.stop()
