"""Commands: what the API publishes to JetStream and the reactor consumes.

A command travels inside a `Command` envelope. The payload is a tagged union
(`type` field), so one module-level decoder reads every kind of command.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Final, Literal, get_args

import msgspec

Category = Literal["Town", "City", "County/Region", "Country", "Continent"]
CATEGORIES: Final[tuple[str, ...]] = get_args(Category)

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
Description = Annotated[str, msgspec.Meta(max_length=1000)]


class CreateLocation(
    msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="CreateLocation", tag_field="type"
):
    """Create a location. Text fields arrive trimmed (see `contracts.validation`)."""

    name: Name
    category: Category
    description: Description = ""


# The family of commands. A Union of tagged Structs once there is more than one.
Payload = CreateLocation

# Where each kind of command is posted: POST /api/<collection>.
COLLECTIONS: Final[dict[str, type[Payload]]] = {"locations": CreateLocation}


def command_type(payload: Payload) -> str:
    """The `type` tag of a payload, e.g. "CreateLocation"."""
    tag = payload.__struct_config__.tag
    assert isinstance(tag, str)
    return tag


class Command(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The envelope published on `cmd.<type>.<command_id>`.

    `command_id` is random (uuid4 hex: 122 random bits), so URLs that carry it
    are capability URLs. `session_id` names the browser session that submitted
    it; its notice is published under that session. `simulate_delay_s` asks a
    reactor started in dev mode to sleep first (the page's "slow reactor"
    control); a production reactor ignores it.
    """

    command_id: str
    submitted_at: datetime
    session_id: str
    correlation_id: str
    payload: Payload
    simulate_delay_s: float = 0.0

    @property
    def type(self) -> str:
        return command_type(self.payload)


command_decoder: Final = msgspec.json.Decoder(Command)
encoder: Final = msgspec.json.Encoder()
