"""Reading back what is stored in the shared streams, by command id.

Both look-ups are a JetStream "last message for subject" get with a wildcard
in the token that the caller does not know (the command type, the session).
"""

from __future__ import annotations

from typing import NamedTuple

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from contracts.commands import Command, command_decoder
from contracts.notices import Notice, notice_decoder
from contracts.topology import (
    COMMANDS_STREAM,
    NOTICES_STREAM,
    command_lookup_subject,
    notice_lookup_subject,
)


class StoredNotice(NamedTuple):
    notice: Notice
    seq: int  # its sequence in the NOTICES stream: the SSE event id


async def find_notice(js: JetStreamContext, command_id: str) -> StoredNotice | None:
    try:
        msg = await js.get_last_msg(NOTICES_STREAM, notice_lookup_subject(command_id))
    except NotFoundError:
        return None
    assert msg.data is not None
    assert msg.seq is not None
    return StoredNotice(notice_decoder.decode(msg.data), msg.seq)


async def find_command(js: JetStreamContext, command_id: str) -> Command | None:
    try:
        msg = await js.get_last_msg(COMMANDS_STREAM, command_lookup_subject(command_id))
    except NotFoundError:
        return None
    assert msg.data is not None
    return command_decoder.decode(msg.data)
