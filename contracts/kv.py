"""KV writes that nats-py leaves sharp."""

from __future__ import annotations

from typing import Final

from nats.js.errors import APIError
from nats.js.kv import KeyValue

# The server's answer to a write whose expected last sequence is not the
# subject's: "wrong last sequence" (10071), and its form within a batch (10164).
WRONG_LAST_SEQUENCE: Final = frozenset({10071, 10164})


async def delete_unless_changed(kv: KeyValue, key: str, revision: int) -> bool:
    """Delete `key` if its last revision is still `revision`; False if it changed since.

    `KeyValue.update` turns the server's "wrong last sequence" into
    `KeyWrongLastSequenceError`, but `KeyValue.delete(last=)` raises it as a
    plain `BadRequestError` with its err_code (nats-py 2.16), so it is caught here.
    """
    try:
        await kv.delete(key, last=revision)
    except APIError as exc:
        if exc.err_code in WRONG_LAST_SEQUENCE:
            return False
        raise
    return True
