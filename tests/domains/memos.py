"""A domain that uses the rest of the machinery: a decision of two events (an atomic
batch), an action on an existing aggregate with a rule, an async view, a policy,
a followable view, and an event schema at version 2 with an upcaster."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from contracts.domain import (
    Aggregate,
    CommandSpec,
    Domain,
    Event,
    EventMeta,
    GetRead,
    Issue,
    ListRead,
    Policy,
    Rejection,
    SummaryRead,
    View,
)

Text = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class WriteMemo(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    text: Text
    folder: Annotated[str, msgspec.Meta(pattern=r"^[a-z]{1,20}$")] = "inbox"


class StampMemo(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    stamp: Text


class MemoWritten(msgspec.Struct, frozen=True):
    text: str


class MemoFiled(msgspec.Struct, frozen=True):
    folder: str
    priority: Literal["normal", "high"]  # version 2; version 1 had no priority


class MemoStamped(msgspec.Struct, frozen=True):
    stamp: str


class Memo(msgspec.Struct, frozen=True):
    stamps: tuple[str, ...] = ()


def decide(state: Memo | None, command: Any) -> list[msgspec.Struct] | Rejection:
    if isinstance(command, WriteMemo):
        return [MemoWritten(command.text), MemoFiled(command.folder, "normal")]
    if state is None:
        return Rejection(404, "No such memo", "There is no memo with this id.", slug="no-memo")
    if command.stamp in state.stamps:
        return Rejection(409, "Stamped already", f"The memo has the stamp {command.stamp!r}.")
    return [MemoStamped(command.stamp)]


def evolve(state: Memo | None, event: Any, meta: EventMeta) -> Memo:
    memo = state or Memo()
    if isinstance(event, MemoStamped):
        return Memo((*memo.stamps, event.stamp))
    return memo


class MemoRecord(msgspec.Struct, frozen=True):
    id: str
    text: str = ""
    folder: str = ""
    stamps: tuple[str, ...] = ()


def memo(record: MemoRecord | None, event: Any, meta: EventMeta) -> MemoRecord:
    record = record or MemoRecord(meta.aggregate_id)
    if isinstance(event, MemoWritten):
        return msgspec.structs.replace(record, text=event.text)
    if isinstance(event, MemoFiled):
        return msgspec.structs.replace(record, folder=event.folder)
    return msgspec.structs.replace(record, stamps=(*record.stamps, event.stamp))


class FolderCount(msgspec.Struct, frozen=True):
    folder: str
    memos: int


def per_folder(record: FolderCount | None, event: MemoFiled, meta: EventMeta) -> FolderCount:
    return FolderCount(event.folder, (record.memos if record else 0) + 1)


class Folders(msgspec.Struct, frozen=True):
    folders: dict[str, int]


def folders(counts: list[FolderCount]) -> Folders:
    return Folders({c.folder: c.memos for c in counts})


def stamp_on_write(event: MemoWritten, meta: EventMeta) -> list[Issue]:
    """Policy: every memo written gets the stamp "seen" (a follow-on command)."""
    return [Issue(StampMemo("seen"), meta.aggregate_id)]


def _v1_to_v2(fields: dict[str, Any]) -> dict[str, Any]:
    return {**fields, "priority": "normal"}


MEMOS = View(
    "memos",
    state=MemoRecord,
    events=(MemoWritten, MemoFiled, MemoStamped),
    apply=memo,
    inline=True,
    followable=True,
)
FOLDERS = View(
    "memo_folders",
    state=FolderCount,
    events=(MemoFiled,),
    key=lambda e, m: e.folder,
    apply=per_folder,
)

DOMAIN = Domain(
    name="memos",
    title="Memos",
    commands=(
        CommandSpec(WriteMemo, aggregate="memo", collection="memos", resource="memos"),
        CommandSpec(
            StampMemo, aggregate="memo", collection="memos", action="stamp", resource="memos"
        ),
    ),
    events=(
        Event(MemoWritten),
        Event(MemoFiled, version=2, upcasters={1: _v1_to_v2}),
        Event(MemoStamped),
    ),
    aggregates=(Aggregate("memo", initial=None, decide=decide, evolve=evolve),),
    views=(MEMOS, FOLDERS),
    policies=(Policy("stamp_on_write", (MemoWritten,), stamp_on_write),),
    reads=(
        SummaryRead("/api/memos/folders", "memo_folders", folders, Folders),
        ListRead("memos", "memos"),
        GetRead("memos", "memos"),
    ),
)
