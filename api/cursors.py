"""Opaque stream positions: what an event's `id:` says, without telling the service's traffic.

An event stream's ids are positions in the NOTICES stream, which counts every
notice of every session: sent as they are, any client would read the
service's volume off them (the `connected` event's id is the count). Each id
is instead that position through a keyed permutation of 64-bit numbers (a
four-round Feistel network whose round function is HMAC-SHA256 with the
server's secret and the stream's context: the session, or the command of a
per-command stream). Encoded, a position is 16 hex digits that differ per
session and give nothing away; a `Last-Event-ID` decodes back to the
position, and one made up decodes to nothing usable (it is checked against
the session's stream like any other).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Final

_TOKEN: Final = re.compile(r"^[0-9a-f]{16}$")
ROUNDS: Final = 4
MASK: Final = 0xFFFFFFFF


class Cursors:
    def __init__(self, secret: str) -> None:
        self._key = hmac.new(secret.encode(), b"stream cursors", hashlib.sha256).digest()

    def _round(self, context: str, n: int, half: int) -> int:
        data = f"{context}\0{n}\0{half}".encode()
        return int.from_bytes(hmac.new(self._key, data, hashlib.sha256).digest()[:4], "big")

    def encode(self, position: int, context: str) -> str:
        left, right = (position >> 32) & MASK, position & MASK
        for n in range(ROUNDS):
            left, right = right, left ^ self._round(context, n, right)
        return f"{(left << 32) | right:016x}"

    def decode(self, token: str, context: str) -> int | None:
        """The position of an id this server gave out in `context`; None if it is not one."""
        if not _TOKEN.match(token):
            return None
        value = int(token, 16)
        left, right = value >> 32, value & MASK
        for n in reversed(range(ROUNDS)):
            left, right = right ^ self._round(context, n, left), left
        return (left << 32) | right
