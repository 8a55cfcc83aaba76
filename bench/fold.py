"""What folding a long account costs: its state as now, against a dict copied per entry.

    python -m bench.fold [--entries 5000 20000 50000] [--rounds 3]

An account's state keeps every reference applied so far, and the state is
immutable (the reactor remembers states and may fold more events onto an
older one). Copying the references per entry, as the account did before,
makes a fold of n entries cost n². The account's state now keeps them in a
persistent map (`immutables.Map`): each entry shares the rest. Both are
timed in this run, interleaved, in process; the figure is the median of the
rounds.
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


def fold_seconds(evolve_: Callable[[Any, Any, EventMeta], Any], events: list[Any]) -> float:
    started = time.perf_counter()
    state = None
    for event in events:
        state = evolve_(state, event, META)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, nargs="+", default=[5000, 20000, 50000])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"{'entries':>8} {'persistent map s':>17} {'dict copied s':>14} {'ratio':>7}")
    for n in args.entries:
        events = [AccountOpened("holder"), *(AccountCharged(5, f"ref-{i}") for i in range(n))]
        now, before = [], []
        for _ in range(args.rounds):
            now.append(fold_seconds(evolve, events))
            before.append(fold_seconds(evolve_copied, events))
        a, b = statistics.median(now), statistics.median(before)
        print(f"{n:>8} {a:>17.3f} {b:>14.3f} {a / b:>7.3f}")


if __name__ == "__main__":
    main()
