"""An aggregate's events as the command handler keeps them: in stream order, indexed.

Each command on an aggregate looked through its whole history: once for events
of its own (was it handled before?) and once per inline view, to find the
events of the records it changes. So a command cost grew with what the
aggregate had seen: a viewing of a video watched 50,000 times took about a
third of a second of the reactor's CPU (`python -m bench.hot`). A `History`
indexes the events by command and, per view, by the record key they change;
each lookup costs what it finds, and the index of a view is built the first
time it is asked for.

Histories only grow, and a command extends the one the last command left
(`plus`): the new History shares the events and indexes of the old, appending
to them, when the old is the newest of its line, as it is unless two commands
were decided on one state (then the second copies). An older History still
reads as it was: everything it answers is bounded by its own length.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Sequence
from typing import overload

from contracts.domain import View
from contracts.events import StoredEvent

KeyOf = Callable[[View, StoredEvent], "str | None"]


class _Log:
    """What a line of Histories shares: the events, and the indexes over them."""

    def __init__(self, events: list[StoredEvent]) -> None:
        self.events = events
        self.commands: dict[str, list[int]] = {}  # command id -> positions of its events
        self.keys: dict[str, dict[str, list[int]]] = {}  # view -> key -> positions
        self.keyed_upto: dict[str, int] = {}  # view -> how many events its index covers
        self._index_commands(0)

    def _index_commands(self, start: int) -> None:
        for i in range(start, len(self.events)):
            self.commands.setdefault(self.events[i].meta.command_id, []).append(i)

    def extend(self, events: Iterable[StoredEvent]) -> None:
        start = len(self.events)
        self.events.extend(events)
        self._index_commands(start)

    def keys_of(self, view: View, key_of: KeyOf) -> dict[str, list[int]]:
        """The view's index, brought up to the last event."""
        index = self.keys.setdefault(view.name, {})
        for i in range(self.keyed_upto.get(view.name, 0), len(self.events)):
            key = key_of(view, self.events[i])  # may raise (BadKey): indexed up to here
            if key is not None:
                index.setdefault(key, []).append(i)
            self.keyed_upto[view.name] = i + 1
        return index


class Events(Sequence[StoredEvent]):
    """The events at the first `length` of `positions` in a log, read-only."""

    def __init__(self, events: list[StoredEvent], positions: Sequence[int], length: int) -> None:
        self._events = events
        self._positions = positions
        self._length = length

    def __len__(self) -> int:
        return self._length

    @overload
    def __getitem__(self, i: int) -> StoredEvent: ...
    @overload
    def __getitem__(self, i: slice) -> list[StoredEvent]: ...
    def __getitem__(self, i: int | slice) -> StoredEvent | list[StoredEvent]:
        at = range(self._length)[i]  # bounded by this view, not the log
        if isinstance(at, range):
            return [self._events[self._positions[j]] for j in at]
        return self._events[self._positions[at]]


class History(Events):
    """The first `n` events of a log: all of them, when it is the newest of its line."""

    def __init__(self, events: Iterable[StoredEvent] = (), *, _log: _Log | None = None) -> None:
        self._log = _Log(list(events)) if _log is None else _log
        self._n = len(self._log.events)
        super().__init__(self._log.events, range(self._n), self._n)

    def plus(self, events: Sequence[StoredEvent]) -> History:
        """This history and then `events` (in stream order, after its last)."""
        if len(self._log.events) != self._n:  # not the newest of its line: copy
            return History([*self, *events])
        self._log.extend(events)
        return History(_log=self._log)

    @property
    def position(self) -> int:
        """The sequence of its last event (0: none)."""
        return self._log.events[self._n - 1].meta.seq if self._n else 0

    def of_command(self, command_id: str) -> list[StoredEvent]:
        """The events the command appended, in order (none: not handled yet)."""
        positions = self._log.commands.get(command_id, ())
        return [self._log.events[p] for p in positions if p < self._n]

    def by_key(self, view: View, keys: Iterable[str], key_of: KeyOf) -> dict[str, Events]:
        """For each of `keys` that an event changes, the events of the view's record of
        that key, in order; `key_of` is the view's key of an event (None: it changes
        none of its records)."""
        index = self._log.keys_of(view, key_of)
        found = {}
        for key in keys:
            positions = index.get(key)
            length = 0 if positions is None else bisect.bisect_left(positions, self._n)
            if positions is not None and length:
                found[key] = Events(self._log.events, positions, length)
        return found
