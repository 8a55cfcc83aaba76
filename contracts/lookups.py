"""Reading back what is stored in the shared streams and buckets.

A command or its notice is found by id alone with a JetStream "last message
for subject" get, a wildcard in the token the caller does not know (the
command type, the session). A session's notices after a cursor are "next
message for subject" gets, one per notice.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Final, NamedTuple

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from contracts.commands import Command, command_decoder
from contracts.notices import Notice, notice_decoder
from contracts.topology import (
    COMMANDS_STREAM,
    NOTICES_STREAM,
    command_lookup_subject,
    notice_lookup_subject,
    session_notices_subject,
)

COMMAND_SEQ_HEADER = "Command-Seq"


class StoredNotice(NamedTuple):
    notice: Notice
    seq: int  # its sequence in the NOTICES stream: the SSE event id
    command_seq: int | None = None  # the COMMANDS message it answers (Command-Seq header)


async def find_notice(js: JetStreamContext, command_id: str) -> StoredNotice | None:
    try:
        msg = await js.get_last_msg(NOTICES_STREAM, notice_lookup_subject(command_id))
    except NotFoundError:
        return None
    assert msg.data is not None
    assert msg.seq is not None
    command_seq = (msg.headers or {}).get(COMMAND_SEQ_HEADER)
    return StoredNotice(
        notice_decoder.decode(msg.data), msg.seq, int(command_seq) if command_seq else None
    )


async def find_command(js: JetStreamContext, command_id: str) -> Command | None:
    try:
        msg = await js.get_last_msg(COMMANDS_STREAM, command_lookup_subject(command_id))
    except NotFoundError:
        return None
    assert msg.data is not None
    return command_decoder.decode(msg.data)


async def session_notices_after(
    js: JetStreamContext, session_id: str, after_seq: int
) -> AsyncGenerator[StoredNotice, None]:
    """The session's notices with a sequence above `after_seq`, in order.

    One "next message for subject" get each: a session has few notices, and
    this runs only when a stream resumes or catches up after a reconnect.
    """
    seq = after_seq + 1
    while True:
        try:
            msg = await js.get_msg(
                NOTICES_STREAM, seq=seq, subject=session_notices_subject(session_id), next=True
            )
        except NotFoundError:
            return
        assert msg.data is not None
        assert msg.seq is not None
        yield StoredNotice(notice_decoder.decode(msg.data), msg.seq)
        seq = msg.seq + 1


class Bounds(NamedTuple):
    first_seq: int  # the oldest notice still kept
    last_seq: int  # the newest notice (0 if there never was one)


async def notice_bounds(js: JetStreamContext) -> Bounds:
    state = (await js.stream_info(NOTICES_STREAM)).state
    return Bounds(state.first_seq, state.last_seq)


# The server answers a subjects listing in pages of this many.
SUBJECTS_PAGE: Final = 100_000


async def bucket_keys(
    js: JetStreamContext, bucket: str, prefix: str = "", *, one_token: bool = False
) -> list[str]:
    """Every key of a KV bucket, as the server lists its stream's subjects.

    Not `kv.keys()`: its watcher can end the initial replay early and return a
    partial or empty list (nats-io/nats.py#842; seen here in CI as a rebuild
    "missing" every record). The server's subject listing is exact. It also
    holds deleted keys' tombstones, so this is for buckets that never delete
    keys (views keep a removed record as `null` with its checkpoint).
    `prefix` ("<token>.") lists only the keys under it, as the server filters;
    `one_token`: only the keys without a dot (after the prefix).
    """
    head = f"$KV.{bucket}."
    wildcard = "*" if one_token else ">"
    state = (await js.stream_info(f"KV_{bucket}", subjects_filter=head + prefix + wildcard)).state
    subjects = state.subjects or {}
    if len(subjects) >= SUBJECTS_PAGE:
        raise RuntimeError(f"bucket {bucket} has {SUBJECTS_PAGE}+ keys: listing them needs paging")
    return [subject[len(head) :] for subject in subjects]
