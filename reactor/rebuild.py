"""`python -m reactor.rebuild` (`task rebuild`): build the read model again from COMMANDS.

While the API and the reactors keep running:

1. create empty buckets for the next version (`locations_v<N+1>`, ...);
2. replay every command, in stream order, through the same projection code
   into them, until caught up with the stream;
3. move the pointer (`projections.active`): every API and reactor process
   switches to the new buckets within milliseconds;
4. after a grace period (for processes to see the move) replay the commands
   that arrived meanwhile; the reactors applied some of them to the old
   version, and applying a command twice changes nothing;
5. compare the new version with the old one and report.

Decisions are honoured, not retaken: a command whose stored notice says it
failed (a taken name, a dead letter) is skipped, and a command that was
replayed from the dead letters counts once, for the message that answered.
Commands older than the notices' retention (7 days) are decided again, in
stream order. The previous version's buckets are kept (older ones dropped),
so a bad rebuild can be undone by moving the pointer back with
`python -m reactor.rebuild --activate N` (then restart the processes:
they only follow the pointer upwards).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections import Counter
from dataclasses import dataclass, field

import msgspec
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from contracts.commands import command_decoder
from contracts.lookups import find_notice
from contracts.projections import Buckets, open_buckets, read_pointer, write_pointer
from contracts.topology import (
    COMMANDS_STREAM,
    LOCATION_NAMES_BUCKET,
    LOCATIONS_BUCKET,
    PROJECTION_BUCKETS,
    projection_bucket_config,
    versioned,
)
from reactor.cli import nats_client, run_tool
from reactor.handlers import Created, Rejected
from reactor.projections import LocationsProjection


@dataclass
class Replay:
    """Replays COMMANDS into one version's buckets and counts what it did."""

    js: JetStreamContext
    buckets: Buckets
    position: int = 0  # the last COMMANDS sequence replayed
    outcomes: Counter[str] = field(default_factory=Counter)

    async def until_caught_up(self) -> None:
        projection = LocationsProjection(lambda: self.buckets)
        while True:
            try:
                msg = await self.js.get_msg(
                    COMMANDS_STREAM, seq=self.position + 1, subject="cmd.>", next=True
                )
            except NotFoundError:
                return  # nothing after `position`: caught up
            assert msg.seq is not None
            self.outcomes[await self._one(projection, msg.seq, msg.data or b"")] += 1
            self.position = msg.seq

    async def _one(self, projection: LocationsProjection, seq: int, data: bytes) -> str:
        try:
            command = command_decoder.decode(data)
        except msgspec.DecodeError:
            return "not a command"
        stored = await find_notice(self.js, command.command_id)
        if stored is not None:
            if stored.command_seq is not None and stored.command_seq != seq:
                return "superseded by a replay"
            if stored.notice.status == "failed":
                return "failed (as recorded)"
        decision = await projection.apply(command)
        if isinstance(decision, Created):
            await projection.settle(command)
            return "applied"
        assert isinstance(decision, Rejected)
        return "rejected, though recorded as succeeded" if stored else "rejected (decided now)"


class Snapshot(msgspec.Struct, frozen=True):
    """One version's read model: locations and name claims by key, counts by category."""

    locations: dict[str, bytes]
    names: dict[str, bytes]
    counts: dict[str, int]


async def snapshot(b: Buckets) -> Snapshot:
    return Snapshot(
        await b.entries(LOCATIONS_BUCKET),
        await b.entries(LOCATION_NAMES_BUCKET),
        await b.category_counts(),
    )


def differences(old: Snapshot, new: Snapshot) -> list[str]:
    """How `new` differs from `old`, ignoring what only `new` has (commands since the switch)."""
    found = []
    for what, a, b in (
        ("location", old.locations, new.locations),
        ("name claim", old.names, new.names),
    ):
        found += [f"{what} {k} missing from the rebuild" for k in a.keys() - b.keys()]
        found += [f"{what} {k} differs" for k in a.keys() & b.keys() if a[k] != b[k]]
    added = Counter(
        msgspec.json.decode(new.locations[k])["category"]
        for k in new.locations.keys() - old.locations.keys()
    )
    for category in old.counts.keys() | new.counts.keys():
        if old.counts.get(category, 0) + added[category] != new.counts.get(category, 0):
            found.append(
                f"count of {category}: {old.counts.get(category, 0)} live, "
                f"{new.counts.get(category, 0)} rebuilt ({added[category]} added since)"
            )
    return found


async def drop_version(js: JetStreamContext, version: int) -> None:
    for bucket in PROJECTION_BUCKETS:
        with contextlib.suppress(NotFoundError):
            await js.delete_key_value(versioned(bucket, version))


async def rebuild(js: JetStreamContext, grace: float = 2.0) -> tuple[Replay, list[str]]:
    """Rebuild into the next version and switch to it; returns the replay and the differences."""
    current = await read_pointer(js)
    target = current + 1
    await drop_version(js, target)  # what an interrupted rebuild left behind
    for bucket in PROJECTION_BUCKETS:
        await js.create_key_value(projection_bucket_config(bucket, target))
    replay = Replay(js, await open_buckets(js, target))
    await replay.until_caught_up()
    await write_pointer(js, target)
    await asyncio.sleep(grace)  # every process sees the move well within this
    await replay.until_caught_up()
    found = differences(
        await snapshot(await open_buckets(js, current)), await snapshot(replay.buckets)
    )
    if current > 2:
        await drop_version(js, current - 1)  # keep the previous version only (1 is never dropped)
    return replay, found


async def run(args: argparse.Namespace) -> int:
    async with nats_client("rebuild") as nc:
        js = nc.jetstream()
        if args.activate is not None:
            await write_pointer(js, args.activate)
            print(f"rebuild: version {args.activate} is now active; restart the API and reactors")
            return 0
        current = await read_pointer(js)
        print(f"rebuild: version {current} is live; building version {current + 1} from COMMANDS")
        replay, found = await rebuild(js, grace=args.grace)
        print(
            f"rebuild: replayed {replay.position} commands: "
            + ", ".join(f"{n} {what}" for what, n in sorted(replay.outcomes.items()))
        )
        print(f"rebuild: version {current + 1} is live")
        if found:
            print(
                f"rebuild: the rebuilt read model differs from the old one in {len(found)} places:"
            )
            for line in found[:50]:
                print(f"  {line}")
            return 1
        print("rebuild: the rebuilt read model equals the old one")
        return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m reactor.rebuild",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--grace",
        type=float,
        default=2.0,
        help="seconds between the switch and the last catch-up (default 2)",
    )
    parser.add_argument(
        "--activate",
        type=int,
        metavar="N",
        help="only move the pointer to version N (to undo a rebuild)",
    )
    return run_tool("rebuild", run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
