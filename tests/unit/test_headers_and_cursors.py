from __future__ import annotations

import pytest

from api.headers import idempotency_key, prefer_wait
from api.streams import _cursor_problem


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("wait=5", 5),
        ("WAIT=5", 5),
        ("respond-async, wait=10", 10),
        ("wait=10; foo=bar", 10),
        ('wait="7"', 7),
        ("wait=100", 30),
        ("wait=0", 0),
        ("wait=abc", None),
        ("wait=-1", None),
        ("wait", None),
        ("handling=lenient", None),
        ("waiting=5", None),
        ("wait=\u00b2", None),  # a digit to str.isdigit(), not to int()
        ("wait=" + "9" * 5000, None),  # more digits than int() takes
        ("wait=\u0663", None),  # an Arabic-Indic three
    ],
)
def test_prefer_wait(header: str | None, expected: int | None) -> None:
    assert prefer_wait(header) == expected


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ('"abc-123"', "abc-123"),
        ("abc-123", "abc-123"),
        ('"8e03978e-40d5"', "8e03978e-40d5"),
    ],
)
def test_idempotency_key_accepts_quoted_or_bare(header: str | None, expected: str | None) -> None:
    assert idempotency_key(header) == expected


@pytest.mark.parametrize("header", ['""', "", "with space", "x" * 256, "caf\u00e9"])
def test_idempotency_key_refuses_malformed(header: str) -> None:
    with pytest.raises(ValueError, match="Idempotency-Key"):
        idempotency_key(header)


@pytest.mark.parametrize(
    ("seq", "first", "last", "problem"),
    [
        (5, 1, 10, None),
        (10, 1, 10, None),  # at the end: nothing to catch up, but valid
        (0, 1, 10, None),  # before everything, nothing expired yet
        (11, 1, 10, "unknown event id"),
        (None, 1, 10, "unknown event id"),  # not an id this server gave out
        (3, 5, 10, "event id older than the notices still kept"),
        (4, 5, 10, None),  # the edge: everything after 4 is still kept
        (0, 1, 0, None),  # an empty stream
        (2**63, 1, 10, "unknown event id"),
    ],
)
def test_cursor_problem(seq: int | None, first: int, last: int, problem: str | None) -> None:
    assert _cursor_problem(seq, first, last) == problem
