"""Ten thousand hostile requests across every route: never a 5xx, every error a problem,
nothing published on any error.

How they are made (seeded: a run is repeatable): each request picks a route
of the API's own `/openapi.json` (or a path that is none), a method, and
fills the route's ids, the query, the headers and the body from lists of
hostile values: ids with wildcards, dots, percent-escapes, non-ASCII and
300 characters; numbers as superscripts, Arabic-Indic digits, 5,000 digits,
NaN and infinities; bodies that are not UTF-8, nest a thousand deep, are
over the size limit, are JSON of the wrong shape, or are nearly right;
headers with forged session cookies, non-ASCII bytes and malformed
preferences. Schemathesis (tests/e2e/test_fuzz.py) covers what the schemas
describe; this covers what they do not.

Checks: no status of 500 or more but a 503 with Retry-After (a view behind,
a stream cap); every 4xx is application/problem+json; the COMMANDS stream
grows by at most the number of POSTs answered 2xx, so no refused request
published anything.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import quote

import httpx
from nats.js import JetStreamContext

from contracts.topology import COMMANDS_STREAM
from tests.helpers import stream_messages
from tests.processes import Process, base_url

REQUESTS = int(os.environ.get("HOSTILE_FUZZ_REQUESTS", "10000"))
CONNECTIONS = 16
SEED = 20261127

IDS = [
    "01a21f6f91f0c75ad4184786",
    "",
    "..",
    ".",
    "*",
    ">",
    "a.b",
    "%00",
    "%2e%2e",
    "%ff",
    quote("ünï"),
    "a" * 300,
    "null",
    "1e9",
    "-1",
    "me",
    "\u00b2".encode().decode("latin-1"),
]
NUMBERS = [
    "",
    "0",
    "1",
    "-1",
    "50",
    "200",
    "201",
    "\u00b2",
    "\u0663",
    "9" * 30,
    "9" * 5000,
    "nan",
    "inf",
    "-inf",
    "1e3",
    "0x10",
    " 5",
    "5 ",
    "%00",
    "a" * 300,
    "\U0001f642",
]
TEXT = ["", "City", "created", "shipped", "x" * 300, "%00", "\u202e", "'; DROP TABLE", "<script>"]
QUERY_KEYS = {
    "limit": NUMBERS,
    "cursor": [*IDS, *NUMBERS],
    "min_position": NUMBERS,
    "timeout": NUMBERS,
    "last_event_id": NUMBERS,
    "status": TEXT,
    "account_id": IDS,
    "owner_id": IDS,
    "author_id": IDS,
    "x": TEXT,
}
CONTENT_TYPES = [
    b"application/json",
    b"application/json",
    b"application/merge-patch+json",
    b"text/plain",
    b"",
    b"application/json; charset=latin-1",
    b"multipart/form-data; boundary=x",
    b"\xff\xfe",
]
PREFER = [
    b"wait=5",
    b"wait=1",
    b"wait=\xc2\xb2",
    b"wait=" + b"9" * 5000,
    b"wait",
    b"respond-async",
    b";;,,=",
]
COOKIES = [b"sid=" + b"a" * 32, b"sid=" + b"a" * 32 + b"." + b"b" * 32, b"sid=\xff", b"sid", b"=;;"]
DELAYS = [b"", b"-1", b"nan", b"1e309", b"0.01", b"61", b"\xc2\xb2"]


def bodies(rnd: random.Random) -> bytes:
    kind = rnd.randrange(12)
    if kind == 0:
        return b""
    if kind == 1:
        return rnd.randbytes(rnd.randrange(1, 300))
    if kind == 2:
        return b'{"name":"\xff\xfe","title":"\xc3"}'
    if kind == 3:
        return b"[" * 1000 + b"]" * 1000
    if kind == 4:
        return b'{"a":"' + b"x" * 70_000 + b'"}'  # over the 64 KiB limit
    if kind == 5:
        return rnd.choice([b"null", b"[]", b"0", b'"x"', b"{", b"{}}", b"{}"])
    if kind in (6, 7):  # an object of the wrong shape
        keys = [
            "name",
            "category",
            "title",
            "url",
            "email",
            "password",
            "display_name",
            "holder",
            "amount",
            "reference",
            "viewing_id",
            "body",
            "account_id",
            "weight_grams",
            "origin",
            "destination",
            "description",
            "bio",
            "type",
            "x",
        ]
        values: list[object] = [
            None,
            0,
            -1,
            1.5,
            10**30,
            "",
            "x" * 300,
            [],
            {},
            True,
            "\u202e",
            "City",
            "GB",
        ]
        obj = {rnd.choice(keys): rnd.choice(values) for _ in range(rnd.randrange(1, 6))}
        return json.dumps(obj).encode()
    # nearly right: a real command with one field off, or all right
    good = rnd.choice(
        [
            {"name": f"Fuzz {rnd.randrange(10**9)}", "category": "City"},
            {"holder": "Fuzz"},
            {"amount": rnd.choice([1, 0, -5, 10**12]), "reference": rnd.choice(["r-1", "", "a b"])},
            {"viewing_id": rnd.choice(["v1", "", "a.b", "x" * 65])},
            {
                "title": rnd.choice(["Fine", "!!!", "", "\x00"]),
                "body": "words",
                "url": "https://e.org/v",
            },
            {"email": rnd.choice(["a@b", "not-an-email", "x@y.zz"]), "password": "short"},
        ]
    )
    return json.dumps(good).encode()


@dataclass
class Tally:
    sent: int = 0
    accepted_posts: int = 0
    problems: list[str] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)


def request_bytes(rnd: random.Random, paths: dict[str, list[str]]) -> tuple[str, str, bytes]:
    """A hostile request: its method, its target and the whole request as bytes."""
    template = (
        rnd.choice(sorted(paths))
        if rnd.random() < 0.9
        else rnd.choice(
            [
                "/api/",
                "/api/x/y/z",
                "/%ff",
                "/api/locations/../locations",
                "//api//locations",
                "/api/users/me",
            ]
        )
    )
    path = template.replace("{id}", rnd.choice(IDS)).replace(
        "{command_id}", rnd.choice([*IDS, "a" * 32])
    )
    query = "&".join(
        f"{key}={quote(rnd.choice(values), safe='%')}"
        for key, values in rnd.sample(sorted(QUERY_KEYS.items()), rnd.randrange(0, 3))
    )
    target = path + ("?" + query if query else "")
    documented = paths.get(template, [])
    if documented and rnd.random() < 0.8:  # mostly what the route answers: past the 405
        method = rnd.choice(documented).upper()
    else:
        method = rnd.choice(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"])
    headers: list[tuple[bytes, bytes]] = [(b"Host", b"fuzz")]
    for name, values, chance in (
        (b"Content-Type", CONTENT_TYPES, 0.9),
        (b"Prefer", PREFER, 0.2),
        (b"Idempotency-Key", [b"k-1", b"", b"with space", b"x" * 300, b"caf\xc3\xa9"], 0.15),
        (b"Last-Event-ID", [n.encode() for n in NUMBERS[:12]], 0.1),
        (b"Cookie", COOKIES, 0.2),
        (b"X-Simulate-Delay", DELAYS, 0.05),
        (b"X-Request-ID", [b"ok-1", b"\xff", b"x" * 500], 0.1),
    ):
        if rnd.random() < chance:
            headers.append((name, rnd.choice(values)))
    body = bodies(rnd) if method in ("POST", "PUT", "PATCH") else b""
    headers.append((b"Content-Length", str(len(body)).encode()))
    head = f"{method} {target} HTTP/1.1\r\n".encode() + b"".join(
        name + b": " + value + b"\r\n" for name, value in headers
    )
    return method, target, head + b"\r\n" + body


async def send(host: str, port: int, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """One request on a connection of its own; an event stream's body is not waited for."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(raw)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {
            k.lower(): v for k, v in (line.split(": ", 1) for line in lines[1:] if ": " in line)
        }
        body = b""
        if "content-length" in headers and not raw.startswith(b"HEAD "):
            body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), 30)
        return status, headers, body
    finally:
        writer.close()


async def test_ten_thousand_hostile_requests_get_no_5xx_and_publish_nothing_on_error(
    api_process: Process, reactor_process: Process, js: JetStreamContext
) -> None:
    url = base_url(api_process)
    async with httpx.AsyncClient(base_url=url) as client:
        documented = (await client.get("/openapi.json")).json()["paths"]
        paths = {path: sorted(operations) for path, operations in documented.items()}
    host, port = url.removeprefix("http://").split(":")
    rnd = random.Random(SEED)
    requests = [request_bytes(rnd, paths) for _ in range(REQUESTS)]
    before = await stream_messages(js, COMMANDS_STREAM)
    tally = Tally()
    queue: asyncio.Queue[tuple[str, str, bytes]] = asyncio.Queue()
    for request in requests:
        queue.put_nowait(request)

    async def worker() -> None:
        while not queue.empty():
            method, target, raw = queue.get_nowait()
            status, headers, body = await send(host, int(port), raw)
            tally.sent += 1
            kind = headers.get("content-type", "")
            where = f"{method} {target[:120]} -> {status} {kind} {body[:200]!r}"
            tally.statuses[status] += 1
            server_error = status >= 500 and not (status == 503 and "retry-after" in headers)
            if server_error or (status >= 400 and kind != "application/problem+json"):
                tally.problems.append(where)
            elif method == "POST" and 200 <= status < 300:
                tally.accepted_posts += 1

    await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))
    assert tally.sent == REQUESTS
    assert not tally.problems, "\n".join(tally.problems[:20])
    # The requests reach every kind of refusal, and some get through.
    assert {400, 401, 404, 405, 413, 415, 422} <= set(tally.statuses), tally.statuses
    assert tally.accepted_posts > 0, tally.statuses
    published = await stream_messages(js, COMMANDS_STREAM) - before
    assert published <= tally.accepted_posts, (published, tally.accepted_posts)
