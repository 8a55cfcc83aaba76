"""Clients that never finish their request, oversized headers, broken HTTP: each gets a
problem+json answer and its connection is closed (never held for ever)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import pytest

from tests.processes import NatsServer, Process, api, base_url

HEADER_TIMEOUT = 1.0


@pytest.fixture(scope="module")
def strict_api(nats_server: NatsServer) -> Iterator[Process]:
    env = {"HEADER_TIMEOUT": str(HEADER_TIMEOUT), "BODY_TIMEOUT": "1", "MAX_HEADER_BYTES": "4096"}
    process = api(nats_server.url, env=env).start()
    yield process
    process.stop()


async def exchange(
    process: Process, sent: bytes, within: float = 10.0
) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes; the status, headers and body of the answer, once the server closes."""
    host, port = base_url(process).removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(sent)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), within)  # to EOF: the server closed it
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


def problem(body: bytes) -> dict[str, object]:
    found: dict[str, object] = json.loads(body)
    return found


async def test_a_thousand_connections_that_never_finish_are_closed_within_the_timeout(
    strict_api: Process,
) -> None:
    started = time.monotonic()
    partial = b"GET /api/locations HTTP/1.1\r\nHost: x\r\nX-Slow: "
    answers = await asyncio.gather(
        *(exchange(strict_api, b"" if i % 2 else partial) for i in range(1000))
    )
    took = time.monotonic() - started
    assert {status for status, _, _ in answers} == {408}
    assert all(h["content-type"] == "application/problem+json" for _, h, _ in answers)
    assert problem(answers[0][2])["title"] == "Request timeout"
    assert took < HEADER_TIMEOUT + 4, f"closed after {took:.1f}s"


async def test_headers_over_the_limit_get_431(strict_api: Process) -> None:
    big = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 5000 + b"\r\n\r\n"
    status, headers, body = await exchange(strict_api, big)
    assert status == 431
    assert headers["content-type"] == "application/problem+json"
    assert problem(body)["status"] == 431


@pytest.mark.parametrize(
    "garbage",
    [
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        b"\x16\x03\x01\x02\x00",
    ],
)
async def test_what_is_not_http_gets_a_400_problem(strict_api: Process, garbage: bytes) -> None:
    status, headers, body = await exchange(strict_api, garbage)
    assert status == 400
    assert headers["content-type"] == "application/problem+json"
    assert problem(body)["title"] == "Malformed request"


async def test_a_body_that_never_arrives_gets_408(strict_api: Process) -> None:
    head = (
        b"POST /api/locations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'Content-Length: 100\r\n\r\n{"name":'
    )
    status, headers, body = await exchange(strict_api, head)
    assert status == 408
    assert headers["content-type"] == "application/problem+json"
    assert "body" in str(problem(body)["detail"])


async def test_a_well_behaved_client_keeps_its_connection(strict_api: Process) -> None:
    host, port = base_url(strict_api).removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        for _ in range(2):  # two requests on one connection: kept alive between them
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 200")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
    finally:
        writer.close()
