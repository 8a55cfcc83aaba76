"""Parsing the request headers the command endpoint honours (pure functions)."""

from __future__ import annotations

import re
from typing import Final

MAX_WAIT: Final = 30
# ASCII digits only, and few enough for int(): `str.isdigit()` accepts "²", which
# int() refuses, and int() refuses strings of over 4,300 digits.
_WHOLE = re.compile(r"^[0-9]{1,18}$")
_PREFERENCE = re.compile(r"^\s*([!#$%&'*+.^_`|~\w-]+)\s*(?:=\s*(\"[^\"]*\"|[^;,\s]*))?", re.ASCII)
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


def whole_number(text: str | None) -> int | None:
    """`text` as a whole number of at most 18 digits, or None if it is not one."""
    return int(text) if text is not None and _WHOLE.match(text) else None


def prefer_wait(header: str | None, limit: int = MAX_WAIT) -> int | None:
    """Seconds asked for by `Prefer: wait=N` (RFC 7240), capped at `limit`; None if not asked.

    Preferences are comma-separated; unknown ones and malformed values are
    ignored, as the RFC says a server may.
    """
    if not header:
        return None
    for preference in header.split(","):
        m = _PREFERENCE.match(preference)
        if m and m.group(1).lower() == "wait":
            value = whole_number((m.group(2) or "").strip('"'))
            if value is not None:
                return min(value, limit)
    return None


def idempotency_key(header: str | None) -> str | None:
    """The key of an `Idempotency-Key` header: a structured-field string, quotes optional.

    Raises ValueError for an empty, over-long or non-printable key.
    """
    if header is None:
        return None
    key = header.strip()
    if len(key) >= 2 and key[0] == key[-1] == '"':
        key = key[1:-1]
    if not _KEY.match(key):
        raise ValueError(
            "Idempotency-Key must be 1 to 255 printable ASCII characters without spaces"
        )
    return key
