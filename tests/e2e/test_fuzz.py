"""Fuzzing the API from its own OpenAPI document, with schemathesis (bounded and seeded).

Every operation but the endless event streams gets generated requests, valid
(positive) and invalid (negative); each answer must not be a 5xx, must use a
documented status code and content type, and must match the documented
schema. The stack is real processes (nats-server, a reactor, the API).
Seeded (`derandomize`), so a run is repeatable; the example count keeps it
to well under a minute.

(Not `schemathesis.pytest.from_fixture`: its lazy loader reads a node
attribute pytest 9 no longer has. Each operation's hypothesis strategy is
driven directly instead.)
"""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.processes import Process, base_url

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Endless streams: a generated request would only ever end by its timeout.
STREAMS = r"^/api/events$|/live$"
EXAMPLES = 25


def fuzz(operation: Any, mode: GenerationMode, url: str) -> int:
    """Run generated requests against one operation; how many were sent."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        calls.append(case.method)
        case.call_and_validate(base_url=url, checks=CHECKS, timeout=35)

    calls: list[str] = []
    run()
    return len(calls)


def test_no_request_gets_a_5xx_or_an_answer_off_its_schema(
    api_process: Process, reactor_process: Process
) -> None:
    url = base_url(api_process)
    schema = schemathesis.openapi.from_url(url + "/openapi.json").exclude(path_regex=STREAMS)
    failures: list[str] = []
    tried = sent = 0
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # the document itself is valid
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            tried += 1
            try:
                sent += fuzz(operation, mode, url)
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE  # nothing to get wrong (no input)
            except Exception as exc:  # a failed check, with the request that caused it
                failures.append(
                    f"{operation.method.upper()} {operation.path} [{mode.value}]: {exc}"
                )
    assert tried >= 2 * 8, f"only {tried} operation runs: the document lost routes"
    assert sent >= tried * 5, f"only {sent} requests sent"
    assert not failures, "\n\n".join(failures)
