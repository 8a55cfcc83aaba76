from __future__ import annotations

import json
from datetime import UTC, datetime

from api.cursors import Cursors
from api.sse import hello_event, notice_event, timeout_event, unavailable_event
from contracts.lookups import StoredNotice
from contracts.notices import Problem
from tests.helpers import make_notice

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def parse(raw: bytes) -> dict[str, str]:
    """The fields of one encoded event (the last value of each)."""
    fields = {}
    for line in raw.decode().splitlines():
        if line and not line.startswith(":"):
            key, _, value = line.partition(": ")
            fields[key] = value
    return fields


def test_succeeded_notice_is_an_event_named_by_status_with_its_id() -> None:
    notice = make_notice(at=T0, resource={"id": "x"})
    fields = parse(notice_event(StoredNotice(notice, 42), "00000000000000aa").encode())
    assert fields["event"] == "succeeded"
    assert fields["id"] == "00000000000000aa"
    data = json.loads(fields["data"])
    assert data["command_id"] == "c" * 32
    assert data["resource"] == {"id": "x"}
    assert data["completed_at"] == "2026-11-23T12:00:00Z"


def test_failed_notice_event() -> None:
    problem = Problem(
        type="/problems/name-taken", title="Name already taken", status=409, detail="d"
    )
    notice = make_notice(status="failed", at=T0, error=problem)
    fields = parse(notice_event(StoredNotice(notice, 7), "07").encode())
    assert fields["event"] == "failed"
    assert json.loads(fields["data"])["error"]["status"] == 409


def test_timeout_event_points_at_the_status_url() -> None:
    raw = timeout_event("c" * 32, "/api/commands/" + "c" * 32).encode()
    fields = parse(raw)
    assert fields["event"] == "timeout"
    assert "id" not in fields
    assert json.loads(fields["data"]) == {
        "command_id": "c" * 32,
        "status_url": "/api/commands/" + "c" * 32,
    }


def test_hello_sets_the_reconnect_delay() -> None:
    raw = hello_event(2000).encode()
    assert raw.startswith(b": ")
    assert parse(raw) == {"retry": "2000"}


def test_a_position_is_opaque_differs_per_stream_and_decodes_back() -> None:
    cursors = Cursors("secret")
    ids = {cursors.encode(n, "session-a") for n in range(1, 1001)}
    assert len(ids) == 1000
    assert all(len(i) == 16 and int(i, 16) >= 0 for i in ids)
    assert cursors.encode(5, "session-a") != cursors.encode(5, "session-b")
    assert cursors.encode(5, "session-a") != Cursors("other").encode(5, "session-a")
    for n in (0, 1, 42, 2**40 + 7, 2**64 - 1):
        assert cursors.decode(cursors.encode(n, "s"), "s") == n
    assert cursors.decode(cursors.encode(42, "s"), "t") != 42  # another stream's: not ours
    for bad in ("42", "not hex at all!", "0" * 17, "", "\u00b2" * 16):
        assert cursors.decode(bad, "s") is None


def test_unavailable_says_so_with_a_problem_and_when_to_come_back() -> None:
    fields = parse(unavailable_event(2000).encode())
    assert fields["event"] == "unavailable"
    assert fields["retry"] == "2000"
    assert "id" not in fields  # not a position: a resume goes on from the last notice seen
    assert json.loads(fields["data"])["status"] == 503
