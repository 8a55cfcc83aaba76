"""Reading back what is stored in the shared streams and buckets.

A command or its notice is found by id alone with a JetStream "last message
for subject" get, a wildcard in the token the caller does not know (the
command type, the session). A session's notices after a cursor are "next
message for subject" gets, one per notice.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any, NamedTuple

import msgspec
from nats.errors import NoRespondersError
from nats.js import JetStreamContext
from nats.js.errors import APIError, NotFoundError, ServiceUnavailableError

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


class _Subjects(msgspec.Struct):
    subjects: dict[str, int] | None = None


class _SubjectsPage(msgspec.Struct):
    """A stream's info, as much as a subjects listing needs: a page of the subjects
    (up to the server's 100,000) and how many match in all; or the API's error."""

    state: _Subjects = msgspec.field(default_factory=_Subjects)
    total: int = 0
    error: dict[str, Any] | None = None


_subjects_page = msgspec.json.Decoder(_SubjectsPage)


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

    The server answers 100,000 subjects a request, sorted, with the total: the
    pages are asked for by offset until the total is listed (it raised at
    100,000, so a list read of a view that large failed). A key written between
    two pages may move the next one on: keys are never listed twice, and one
    written meanwhile may be missed, as by a listing made a moment before.
    """
    head = f"$KV.{bucket}."
    wildcard = "*" if one_token else ">"
    subject = f"{js._prefix}.STREAM.INFO.KV_{bucket}"
    wanted = head + prefix + wildcard
    keys: dict[str, None] = {}
    while True:
        request = msgspec.json.encode({"subjects_filter": wanted, "offset": len(keys)})
        try:
            reply = await js._nc.request(subject, request, timeout=js._timeout)
        except NoRespondersError:  # as nats-py's stream_info raises them
            raise ServiceUnavailableError from None
        page = _subjects_page.decode(reply.data)
        if page.error is not None:
            raise APIError.from_error(page.error)  # NotFoundError for no such bucket, ...
        subjects = page.state.subjects or {}
        keys.update(dict.fromkeys(subject[len(head) :] for subject in subjects))
        if not subjects or len(keys) >= page.total:
            return list(keys)
