"""The smallest domain: one command, one event, one inline view (README "Add a domain")."""

from __future__ import annotations

from typing import Annotated

import msgspec

from contracts.domain import (
    Aggregate,
    CommandSpec,
    Domain,
    Event,
    EventMeta,
    GetRead,
    ListRead,
    View,
)


class WriteNote(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    text: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]


class NoteWritten(msgspec.Struct, frozen=True):
    text: str


class Note(msgspec.Struct, frozen=True):
    id: str
    text: str


def decide(state: None, command: WriteNote) -> list[NoteWritten]:
    return [NoteWritten(command.text)]


def note(record: Note | None, event: NoteWritten, meta: EventMeta) -> Note:
    return Note(meta.aggregate_id, event.text)


NOTES = View("notes", state=Note, events=(NoteWritten,), apply=note, inline=True)

DOMAIN = Domain(
    name="notes",
    title="Notes",
    commands=(CommandSpec(WriteNote, aggregate="note", collection="notes", resource="notes"),),
    events=(Event(NoteWritten),),
    aggregates=(Aggregate("note", initial=None, decide=decide, evolve=lambda s, e, m: None),),
    views=(NOTES,),
    reads=(ListRead("notes", "notes"), GetRead("notes", "notes")),
)
