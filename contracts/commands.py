"""The command envelope: what the API (or a policy) publishes and the reactor consumes.

The payload stays raw JSON in the envelope: the reactor decodes it with the
schema the registry holds for `type`, so one envelope serves every domain.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Annotated, Final

import msgspec

from contracts import tracing

Token = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
TypeName = Annotated[str, msgspec.Meta(pattern=r"^[A-Z][A-Za-z0-9]{0,63}$")]
# The session of what no browser asked for (a policy acting on an imported event).
NO_SESSION: Final = "0" * 32


class Command(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The envelope published on `cmd.<type>.<command_id>`.

    `command_id` is random (uuid4 hex: 122 random bits) for a browser's
    command, so URLs that carry it are capability URLs; a policy's command has
    an id derived from the event that caused it. `aggregate_id` names the
    aggregate it acts on (new for a creating command, derived from the
    command). `session_id` names the browser session whose notices it joins;
    `caused_by` is the command whose event made a policy send this one.
    `simulate_delay_s` asks a reactor started in dev mode to sleep first (the
    page's "slow reactor" control); a production reactor ignores it.

    The ids become NATS subject tokens (`notice.<session>.<command>`,
    `ev.<aggregate>.<id>`): decoding refuses any that could not be one (empty,
    a dot, a wildcard), so a malformed envelope is poison at once, never a
    command retried for ever.
    """

    command_id: Token
    type: TypeName
    aggregate_id: Token
    submitted_at: datetime
    session_id: Token
    correlation_id: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    payload: msgspec.Raw
    caused_by: Token | None = None
    simulate_delay_s: Annotated[float, msgspec.Meta(ge=0, le=60)] = 0.0
    # W3C trace context (contracts.tracing): the trace this command is part of.
    traceparent: Annotated[str, msgspec.Meta(pattern=tracing.PATTERN)] | None = None


# The most a dev-mode reactor sleeps for `simulate_delay_s` (X-Simulate-Delay).
MAX_SIMULATED_DELAY: Final = 60.0

command_decoder: Final = msgspec.json.Decoder(Command)
encoder: Final = msgspec.json.Encoder()


def new_aggregate_id(command_id: str, submitted_at: datetime) -> str:
    """The id of the aggregate a creating command makes: the same on every delivery.

    Time-ordered (milliseconds since the epoch, hex) so that sorting ids
    newest-first lists records newest-first, then 48 bits derived from the
    command id (not the id itself: that is a capability).
    """
    ms = int(submitted_at.timestamp() * 1000)
    digest = hashlib.sha256(command_id.encode()).hexdigest()
    return f"{ms:012x}{digest[:12]}"


def derived_command_id(*parts: str) -> str:
    """A command id that is the same whenever the same parts make it (a policy's)."""
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]
