"""What folding a long account or a much-watched video costs: its state as now, against
a dict (or set) copied per entry; and what a viewing costs the home totals.

    python -m bench.fold [--entries 5000 20000 50000] [--videos 10000 100000] [--rounds 3]

An account's state keeps every reference applied so far, a video's every
viewing id, and the state is immutable (the reactor remembers states and may
fold more events onto an older one). Copying them per entry, as both did
before, makes a fold of n entries cost n². Both now keep them in a persistent
map (`immutables.Map`): each entry shares the rest. Now and before are timed
in this run, interleaved, in process; the figure is the median of the rounds.

The home totals (`home_totals`, an async view) keep a count per video. Given N
videos, a viewing is folded into the record that holds its video and that
record encoded (what the view writes, once per batch): the records shared out
by video now, against one record for every video as before (its key forced
to one). Also the largest record's size: NATS refuses messages over 4 MB.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgspec

from contracts.domain import EventMeta
from domains.accounting.aggregate import Account, evolve
from domains.accounting.events import AccountCharged, AccountOpened
from domains.videos import aggregate as videos
from domains.videos.events import VideoPublished, VideoViewed
from domains.videos.views import HOME, Home, home

META = EventMeta(
    aggregate="account",
    aggregate_id="a",
    seq=1,
    at=datetime.now(UTC),
    type="AccountCharged",
    command_id="c",
    correlation_id="c",
    session_id="s",
)


class Copied(msgspec.Struct, frozen=True):
    """The account's state as before: a dict of the references, copied per entry."""

    holder: str
    applied: dict[str, int] = {}


def evolve_copied(state: Copied | None, event: Any, meta: EventMeta) -> Copied:
    if isinstance(event, AccountOpened):
        return Copied(event.holder)
    assert state is not None
    applied = {**state.applied, Account.entry("charge", event.reference): event.amount}
    return msgspec.structs.replace(state, applied=applied)


class CopiedVideo(msgspec.Struct, frozen=True):
    """The video's state as before: a set of the viewing ids, copied per viewing."""

    viewings: frozenset[str] = frozenset()


def evolve_copied_video(state: CopiedVideo | None, event: Any, meta: EventMeta) -> CopiedVideo:
    if isinstance(event, VideoPublished):
        return CopiedVideo()
    assert state is not None
    return CopiedVideo(state.viewings | {event.viewing_id})


def fold_seconds(evolve_: Callable[[Any, Any, EventMeta], Any], events: list[Any]) -> float:
    started = time.perf_counter()
    state = None
    for event in events:
        state = evolve_(state, event, META)
    return time.perf_counter() - started


def viewing_seconds(
    key: Callable[[Any, EventMeta], str | None], videos: int, viewings: int
) -> tuple[float, int]:
    """Seconds a viewing (fold and encode its record) and the largest record, in bytes."""
    published = VideoPublished("u", "Cats", "https://example.org/v", "")
    shares: dict[str, dict[str, int]] = {}
    for n in range(videos):  # the records as folding the publications would leave them
        meta = msgspec.structs.replace(META, aggregate_id=f"{n:032x}", seq=n + 1)
        shares.setdefault(key(published, meta) or "", {})[meta.aggregate_id] = 0
    records = {at: Home(0, len(counts), counts, videos) for at, counts in shares.items()}
    largest = max(len(msgspec.json.encode(record)) for record in records.values())
    viewed = VideoViewed("viewing", None)
    started = time.perf_counter()
    for n in range(viewings):
        meta = msgspec.structs.replace(
            META, aggregate_id=f"{n * 7919 % videos:032x}", seq=videos + n + 1
        )
        at = key(viewed, meta) or ""
        records[at] = home(records[at], viewed, meta)
        msgspec.json.encode(records[at])
    return (time.perf_counter() - started) / viewings, largest


def one_record(event: Any, meta: EventMeta) -> str:
    return "home"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, nargs="+", default=[5000, 20000, 50000])
    parser.add_argument("--videos", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"{'fold':>8} {'entries':>8} {'persistent map s':>17} {'copied s':>14} {'ratio':>7}")
    for n in args.entries:
        account = [AccountOpened("holder"), *(AccountCharged(5, f"ref-{i}") for i in range(n))]
        video = [
            VideoPublished("u", "Cats", "https://example.org/v", ""),
            *(VideoViewed(f"viewing-{i}", None) for i in range(n)),
        ]
        for name, events, now_, before_ in (
            ("account", account, evolve, evolve_copied),
            ("video", video, videos.evolve, evolve_copied_video),
        ):
            now, before = [], []
            for _ in range(args.rounds):
                now.append(fold_seconds(now_, events))
                before.append(fold_seconds(before_, events))
            a, b = statistics.median(now), statistics.median(before)
            print(f"{name:>8} {n:>8} {a:>17.3f} {b:>14.3f} {a / b:>7.3f}")
    print(f"\n{'videos':>8} {'shared out µs':>14} {'one record µs':>14} {'ratio':>7}", end="")
    print(f" {'largest KB (now / before)':>26}")
    for n in args.videos:
        shared, whole = [], []
        for _ in range(args.rounds):
            shared.append(viewing_seconds(HOME.key, n, 200))
            whole.append(viewing_seconds(one_record, n, 200))
        a, b = statistics.median(t for t, _ in shared), statistics.median(t for t, _ in whole)
        sizes = f"{shared[0][1] / 1e3:.0f} / {whole[0][1] / 1e3:.0f}"
        print(f"{n:>8} {a * 1e6:>14.1f} {b * 1e6:>14.1f} {a / b:>7.3f} {sizes:>26}")


if __name__ == "__main__":
    main()
