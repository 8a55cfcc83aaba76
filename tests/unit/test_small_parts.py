"""Pure pieces: session cookies, problems, metrics, the watch line, retry backoff."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from api.metrics import Metrics
from api.problems import HTTPProblem
from api.session import cookie_value, new_session_id, session_from_cookie
from reactor.consumer import retry_delay
from reactor.watch import describe

ROOT = Path(__file__).resolve().parents[2]


def test_session_ids_are_random_128_bit_hex() -> None:
    ids = {new_session_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


SIGNED_A = cookie_value(b"secret", "a" * 32)
SIGNED_B = cookie_value(b"secret", "b" * 32)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("sid=" + SIGNED_A, "a" * 32),
        ("theme=dark; sid=" + SIGNED_B, "b" * 32),
        ("sid=" + "a" * 32, None),  # an id the server did not sign: chosen by the client
        ("sid=" + "a" * 32 + "." + SIGNED_B.split(".")[1], None),  # another id's signature
        ("sid=" + cookie_value(b"other", "a" * 32), None),  # another deployment's
        ("sid=not-hex", None),
        ("sid=" + SIGNED_A[1:], None),
        ("other=1", None),
        ("", None),
        (None, None),
        ('sid="unterminated', None),
    ],
)
def test_session_cookie_parsing(header: str | None, expected: str | None) -> None:
    assert session_from_cookie(header, b"secret") == expected


def test_problem_type_is_derived_from_title() -> None:
    exc = HTTPProblem(415, "Unsupported media type", "no")
    assert exc.problem.type == "/problems/unsupported-media-type"
    assert (
        HTTPProblem(422, "Invalid command", "x", slug="validation").problem.type
        == "/problems/validation"
    )


def test_metrics_render_prometheus_text() -> None:
    m = Metrics()
    m.inc("commands_accepted_total", 'type="CreateLocation"')
    m.inc("commands_accepted_total", 'type="CreateLocation"')
    m.gauges["relay_waiters"] = lambda: 3
    assert m.render().splitlines() == [
        "# TYPE commands_accepted_total counter",
        'commands_accepted_total{type="CreateLocation"} 2',
        "# TYPE relay_waiters gauge",
        "relay_waiters 3",
    ]


def test_retry_delay_backs_off_and_caps() -> None:
    assert [retry_delay(n) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]
    assert retry_delay(20) == 30.0


def test_watch_describes_undecodable_messages_without_failing() -> None:
    assert "undecodable" in describe("cmd.X.1", b"{nope")


def imports_of(package: str) -> set[str]:
    names: set[str] = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module.split(".")[0])
    return names


def test_api_and_reactor_share_only_contracts_and_domains() -> None:
    assert "reactor" not in imports_of("api")
    assert "api" not in imports_of("reactor")
    assert not {"api", "reactor", "domains"} & imports_of("contracts")


def test_domains_are_pure() -> None:
    """No NATS, no HTTP, neither process: a domain is decisions and folds only."""
    impure = {"api", "reactor", "nats", "starlette", "uvicorn", "sse_starlette", "httpx"}
    assert not impure & imports_of("domains")


def test_generic_code_names_no_domain() -> None:
    from domains import DOMAINS

    for package in ("api", "reactor", "contracts", "web"):
        for path in (ROOT / package).rglob("*.*"):
            if path.suffix in (".py", ".js", ".html"):
                text = path.read_text()
                for domain in DOMAINS:
                    assert re.search(rf"\b{domain.name}\b", text) is None, (path, domain.name)
