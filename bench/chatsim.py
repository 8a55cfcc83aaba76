"""`python -m bench.chatsim` (`task chat:simulate`): chat traffic at a rate, checked at the end.

Sends batches of messages to `POST /api/chat/messages` on an open-loop
schedule: channels of skewed popularity (Zipf, s = 1.1: the first channel is
the busiest), many chatters (Zipf too: a few talk a lot), and `sent_at` a
little before the moment of sending (up to `--jitter` seconds: messages
arrive slightly out of order). A share of messages (`--late`) is dated an
hour back, into channels the API already counts: late by any clock.

It keeps its own tally of what was accepted: per channel the total, the
late ones, and per 10-minute window the count and the distinct users. Each
batch carries an Idempotency-Key, so a request that failed on the way is
sent again without being counted twice. At the end it waits for the counts
to settle and compares every channel's record with the tally (total, late,
every window's count and chatters); exit status 1 if any differs.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import msgspec

from bench.rawhttp import Client
from domains.chat.windows import WINDOW

_SAID: Final = """hello there anyone seen the new build it works on my machine ship it lol brb
coffee meeting in five nice one thanks agreed not sure about that deploy failed again rollback
please merged looks good to me gg"""
WORDS: Final = tuple(_SAID.split())
LATE_BY: Final = timedelta(hours=1)  # far past any window's grace


class Message(msgspec.Struct, frozen=True):
    channel: str
    user: str
    text: str
    sent_at: datetime


class Batch(msgspec.Struct, frozen=True):
    messages: list[Message]


@dataclass
class ChannelTally:
    total: int = 0
    late: int = 0
    windows: dict[int, tuple[int, set[str]]] = field(default_factory=dict)  # start -> count, users


class Tally:
    """What the API should count, from the messages it accepted."""

    def __init__(self) -> None:
        self.channels: defaultdict[str, ChannelTally] = defaultdict(ChannelTally)
        self.messages = 0
        self.batches = 0

    def add(self, batch: Batch, late: set[int]) -> None:
        """Count an accepted batch; `late`: the indexes of the messages dated late on purpose."""
        self.batches += 1
        for i, message in enumerate(batch.messages):
            self.messages += 1
            tally = self.channels[message.channel]
            tally.total += 1
            if i in late:
                tally.late += 1
                continue
            start = int(message.sent_at.timestamp() // WINDOW) * WINDOW
            count, users = tally.windows.get(start, (0, set()))
            users.add(message.user)
            tally.windows[start] = (count + 1, users)

    def differences(self, records: dict[str, Any]) -> list[str]:
        """Where the API's records (channel -> JSON record) differ from the tally."""
        found: list[str] = []
        for channel, tally in sorted(self.channels.items()):
            record = records.get(channel)
            if record is None:
                found.append(f"{channel}: no record (tally: {tally.total} messages)")
                continue
            for name in ("total", "late"):
                if record[name] != getattr(tally, name):
                    found.append(f"{channel}: {name} {record[name]}, tally {getattr(tally, name)}")
            shown = {
                int(datetime.fromisoformat(w["start"]).timestamp()): w for w in record["windows"]
            }
            oldest_shown = min(shown) if shown else 0
            for start, (count, users) in sorted(tally.windows.items()):
                window = shown.get(start)
                if window is None:
                    if start >= oldest_shown:  # older ones may have scrolled out of the record
                        found.append(f"{channel}: window {_at(start)} missing")
                    continue
                if (window["count"], window["chatters"]) != (count, len(users)):
                    found.append(
                        f"{channel}: window {_at(start)} count {window['count']} chatters "
                        f"{window['chatters']}, tally {count} and {len(users)}"
                    )
        return found


def _at(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%H:%M")


def zipf(n: int, s: float, rng: random.Random) -> Callable[[int], list[int]]:
    """A sampler of k indexes in [0, n), index i weighted 1 / (i + 1)^s."""
    cumulative = list(itertools.accumulate(1 / (i + 1) ** s for i in range(n)))

    def sample(k: int) -> list[int]:
        return rng.choices(range(n), cum_weights=cumulative, k=k)

    return sample


class Traffic:
    """Batches of realistic messages: skewed channels, many chatters, slightly out of order."""

    def __init__(
        self, channels: int, users: int, prefix: str, jitter: float, seed: int | None = None
    ) -> None:
        self.rng = random.Random(seed)
        self.names = [f"{prefix}-{i:04d}" for i in range(channels)]
        self.users = [f"user{i:05d}" for i in range(users)]
        self._channel = zipf(channels, 1.1, self.rng)
        self._user = zipf(users, 0.8, self.rng)
        self.jitter = jitter
        self.late_into: list[str] = []  # channels known to be counted: late messages go there

    def batch(self, size: int, late_share: float = 0.0) -> tuple[Batch, set[int]]:
        now = datetime.now(UTC)
        rng = self.rng
        late: set[int] = set()
        messages = []
        for i, (c, u) in enumerate(zip(self._channel(size), self._user(size), strict=True)):
            channel, sent_at = self.names[c], now - timedelta(seconds=rng.random() * self.jitter)
            if self.late_into and rng.random() < late_share:
                channel, sent_at = rng.choice(self.late_into), now - LATE_BY
                late.add(i)
            text = " ".join(rng.choices(WORDS, k=rng.randint(1, 12)))
            messages.append(Message(channel, self.users[u], text, sent_at))
        return Batch(messages), late


@dataclass
class Run:
    sent: int = 0  # messages accepted
    batches: int = 0
    failed: Counter[str] = field(default_factory=Counter)  # attempts sent again, by why
    refused: int = 0  # batches the API refused (4xx): not counted
    started: float = 0.0
    ended: float = 0.0


async def post(
    client: Client, body: bytes, key: str, failed: Counter[str], attempts: int = 10
) -> int:
    """POST a batch until it is answered: its status. Each failed attempt is counted in
    `failed` by why (no answer, 5xx, or 409: the same key still in flight) and sent
    again with the same Idempotency-Key: the API accepts it once."""
    headers = {"Idempotency-Key": key}
    for attempt in range(attempts):
        try:
            response = await client.request("POST", "/api/chat/messages", body, headers)
        except (OSError, asyncio.IncompleteReadError) as exc:
            failed[type(exc).__name__] += 1
        else:
            if response.status < 500 and response.status != 409:
                return response.status
            failed[str(response.status)] += 1
        await asyncio.sleep(min(0.1 * 2**attempt, 2.0))
    raise RuntimeError(f"batch {key} was not accepted after {attempts} attempts")


async def simulate(
    url: str,
    traffic: Traffic,
    tally: Tally,
    *,
    rate: float,
    duration: float,
    batch_size: int,
    late_share: float = 0.0,
    concurrency: int = 8,
    say: Callable[[str], None] = print,
) -> Run:
    """Send `rate` messages a second for `duration` seconds; tally what is accepted."""
    client = Client(url)
    run = Run(started=time.monotonic())
    per_second = rate / batch_size
    slots = asyncio.Semaphore(concurrency)
    token = uuid.uuid4().hex[:8]
    pending: set[asyncio.Task[None]] = set()

    async def send(k: int, batch: Batch, late: set[int]) -> None:
        try:
            body, key = msgspec.json.encode(batch), f"chatsim-{token}-{k}"
            status = await post(client, body, key, run.failed)
            if status in (200, 201, 202):
                tally.add(batch, late)
                run.sent += len(batch.messages)
                run.batches += 1
            else:
                run.refused += 1
        finally:
            slots.release()

    reported = run.started
    k = 0
    while (now := time.monotonic()) < run.started + duration:
        due = run.started + k / per_second
        if due > now:
            await asyncio.sleep(due - now)
        await slots.acquire()
        batch, late = traffic.batch(batch_size, late_share)
        task = asyncio.create_task(send(k, batch, late))
        pending.add(task)
        task.add_done_callback(pending.discard)
        k += 1
        if not traffic.late_into and late_share and k % 20 == 0:
            traffic.late_into = await _counted(client, traffic.names[:5])
        if time.monotonic() - reported >= 1.0:
            reported = time.monotonic()
            elapsed = reported - run.started
            say(
                f"chat:simulate  {elapsed:5.1f}s  sent {run.sent:,} messages in {run.batches:,} "
                f"batches ({run.sent / elapsed:,.0f}/s)  sent again {run.failed.total()}"
            )
    await asyncio.gather(*pending)
    run.ended = time.monotonic()
    client.close()
    return run


async def _counted(client: Client, channels: Sequence[str]) -> list[str]:
    """Those of `channels` the API already counts (their clock runs: an old message is late)."""
    found = []
    for channel in channels:
        response = await client.request("GET", f"/api/chat/channels/{channel}")
        if response.status == 200:
            found.append(channel)
    return found


async def records(url: str, channels: Sequence[str]) -> dict[str, Any]:
    """The API's record of each channel (those it has)."""
    client = Client(url)
    found: dict[str, Any] = {}
    lock = asyncio.Semaphore(16)

    async def one(channel: str) -> None:
        async with lock:
            response = await client.request("GET", f"/api/chat/channels/{channel}")
        if response.status == 200:
            found[channel] = msgspec.json.decode(response.body)

    try:
        await asyncio.gather(*(one(c) for c in channels))
    finally:
        client.close()
    return found


async def settle(url: str, tally: Tally, within: float = 60.0) -> list[str]:
    """Wait until the API's totals reach the tally (or stop moving for `within` s); differences."""
    channels = list(tally.channels)
    loop = asyncio.get_running_loop()
    last_change, last_sum = loop.time(), -1
    while True:
        found = await records(url, channels)
        counted = sum(r["total"] for r in found.values())
        if counted == tally.messages and not tally.differences(found):
            return []
        if counted != last_sum:
            last_change, last_sum = loop.time(), counted
        elif loop.time() - last_change > within:
            return tally.differences(found)
        await asyncio.sleep(0.25)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.chatsim",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the API")
    parser.add_argument("--rate", type=float, default=2000, help="messages a second")
    parser.add_argument("--channels", type=int, default=50)
    parser.add_argument("--duration", type=float, default=10, help="seconds")
    parser.add_argument("--users", type=int, default=0, help="chatters (default 20 a channel)")
    parser.add_argument("--batch", type=int, default=0, help="messages a batch (default ≤1000)")
    parser.add_argument("--late", type=float, default=0.0005, help="share dated an hour back")
    parser.add_argument("--jitter", type=float, default=2.0, help="seconds sent_at lags at most")
    parser.add_argument("--prefix", default="", help="channel names' prefix (default: random)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--concurrency", type=int, default=8, help="batches in flight at most")
    parser.add_argument("--no-check", dest="check", action="store_false")
    parser.add_argument("--settle", type=float, default=60, help="seconds to wait for counts")
    args = parser.parse_args(argv)

    prefix = args.prefix or uuid.uuid4().hex[:4]
    batch_size = args.batch or int(min(1000, max(1, args.rate // 10)))
    traffic = Traffic(
        args.channels, args.users or 20 * args.channels, prefix, args.jitter, args.seed
    )
    tally = Tally()
    print(
        f"chat:simulate  {args.rate:,.0f} messages/s for {args.duration:g}s into "
        f"{args.channels} channels ({prefix}-0000 busiest), {len(traffic.users):,} chatters, "
        f"batches of {batch_size}, {args.url}"
    )
    run = asyncio.run(
        simulate(
            args.url,
            traffic,
            tally,
            rate=args.rate,
            duration=args.duration,
            batch_size=batch_size,
            late_share=args.late,
            concurrency=args.concurrency,
        )
    )
    wall = run.ended - run.started
    late = sum(t.late for t in tally.channels.values())
    print(
        f"chat:simulate  sent {run.sent:,} messages ({late:,} dated late on purpose) in "
        f"{run.batches:,} batches over {wall:.1f}s: {run.sent / wall:,.0f}/s; "
        f"{run.refused} refused; attempts sent again: "
        + (", ".join(f"{n} ({why})" for why, n in run.failed.items()) or "none")
    )
    busiest = sorted(tally.channels.items(), key=lambda kv: -kv[1].total)[:5]
    print("chat:simulate  busiest: " + ", ".join(f"{c} {t.total:,}" for c, t in busiest))
    if not args.check:
        return 0
    differences = asyncio.run(settle(args.url, tally, within=args.settle))
    if differences:
        print(
            f"chat:simulate  the API's counts differ from the tally in {len(differences)} places:"
        )
        for line in differences[:30]:
            print(f"  {line}")
        return 1
    windows = sum(len(t.windows) for t in tally.channels.values())
    print(
        f"chat:simulate  checked {len(tally.channels)} channels: every total, late count and "
        f"window ({windows} in all: count and chatters) equals the tally"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
