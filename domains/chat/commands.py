"""What a client may send: a batch of chat messages, each checked, all or none."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Final

import msgspec

from contracts.domain import some_text
from contracts.notices import FieldError

# A channel is a subject token and a KV key: letters, digits, '_' and '-'.
Channel = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[0-9A-Za-z][0-9A-Za-z_-]{0,63}$",
        description="a letter or digit, then up to 63 letters, digits, - or _",
    ),
]
# Not trimmed (only a body's top-level fields are): "  " is refused by its pattern.
User = Annotated[str, some_text(64)]
Text = Annotated[str, some_text(500)]
SentAt = Annotated[datetime, msgspec.Meta(tz=True)]

MAX_MESSAGES: Final = 1000
# A batch is stored as one atomic batch of events: one per channel, and one of
# its own. The server takes at most 1,000 messages in an atomic batch.
MAX_CHANNELS: Final = 999
# A message dated ahead of the server would move its channel's clock on (and
# make others late): a client's clock may be this far ahead, no more.
MAX_AHEAD: Final = timedelta(seconds=60)
MAX_ERRORS: Final = 20  # a batch of 1,000 bad dates says so 20 times, not 1,000
# A message dated before this has no window a record can hold (year 0 has no date).
EARLIEST: Final = datetime(1970, 1, 1, tzinfo=UTC)


class ChatMessage(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One chat message: who said what, where, and when (UTC offset required)."""

    channel: Channel
    user: User
    text: Text
    sent_at: SentAt


class PostMessages(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A batch of up to 1,000 chat messages: accepted whole, or refused whole (422, with
    the index of the message at fault) and nothing published."""

    messages: Annotated[list[ChatMessage], msgspec.Meta(min_length=1, max_length=MAX_MESSAGES)]


def check(command: PostMessages, now: datetime) -> Sequence[FieldError]:
    """What the schema cannot say: no message from the future or before 1970, at most
    999 channels."""
    errors = [
        FieldError(f"$.messages[{i}].sent_at", problem)
        for i, message in enumerate(command.messages)
        if (problem := _when_problem(message.sent_at, now)) is not None
    ][:MAX_ERRORS]
    channels = len({message.channel for message in command.messages})
    if channels > MAX_CHANNELS:
        errors.append(
            FieldError("$.messages", f"names {channels} channels: at most {MAX_CHANNELS} a batch")
        )
    return errors


def _when_problem(sent_at: datetime, now: datetime) -> str | None:
    if sent_at > now + MAX_AHEAD:
        return "is in the future (more than 60 s ahead)"
    if sent_at < EARLIEST:
        return "is before 1970-01-01T00:00:00Z"
    return None
