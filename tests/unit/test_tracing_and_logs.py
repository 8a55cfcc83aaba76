"""Trace context and log lines as pure functions."""

from __future__ import annotations

import json
import logging

import pytest

from contracts import tracing
from contracts.logs import PLAIN, ContextFilter, JsonFormatter, bound
from reactor.watch import describe

PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.mark.parametrize(
    ("header", "valid"),
    [
        (PARENT, True),
        (PARENT.upper(), True),  # read case-insensitively
        ("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", False),  # unknown version
        ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", False),  # zero trace
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", False),  # zero span
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7", False),
        ("garbage", False),
        (None, False),
    ],
)
def test_a_traceparent_is_taken_only_when_valid(header: str | None, valid: bool) -> None:
    assert (tracing.parse(header) is not None) == valid


def test_each_hop_keeps_the_trace_with_a_span_of_its_own() -> None:
    hop = tracing.child(PARENT)
    assert tracing.trace_id(hop) == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert hop.split("-")[2] != PARENT.split("-")[2]
    assert tracing.parse(hop) == hop
    fresh = tracing.child(None)
    assert tracing.parse(fresh) == fresh
    assert tracing.trace_id(fresh) != tracing.trace_id(PARENT)
    assert tracing.trace_id(None) == ""


def record(message: str) -> logging.LogRecord:
    made = logging.LogRecord("reactor", logging.INFO, __file__, 1, message, None, None)
    ContextFilter().filter(made)
    return made


def test_bound_ids_reach_every_line_plain_and_json() -> None:
    with bound(command_id="c1", trace_id="t1", request_id=None):
        inside = record("handled")
    outside = record("idle")
    line = json.loads(JsonFormatter().format(inside))
    assert line["message"] == "handled"
    assert (line["command_id"], line["trace_id"]) == ("c1", "t1")
    assert "request_id" not in line  # nothing bound for it
    assert logging.Formatter(PLAIN).format(inside).endswith("handled [command_id=c1 trace_id=t1]")
    assert "command_id" not in json.loads(JsonFormatter().format(outside))


def test_task_watch_shows_the_trace_id() -> None:
    line = describe("ev.location.x", b'{"name":"A"}', {"traceparent": PARENT})
    assert line.endswith("trace=4bf92f3577b34da6a3ce929d0e0e4736")
    assert "trace=" not in describe("ev.location.x", b"{}")
