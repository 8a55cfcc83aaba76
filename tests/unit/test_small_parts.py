"""Pure pieces: session cookies, problems, metrics, the watch line, retry backoff, what the
command-line tools say."""

from __future__ import annotations

import ast
import asyncio
import re
from datetime import UTC, datetime
from pathlib import Path

import nats.js.errors
import pytest

from api.main import exposed_with_the_dev_secret
from api.metrics import Metrics
from api.problems import HTTPProblem
from api.session import cookie_value, new_session_id, session_from_cookie
from api.settings import Settings
from contracts.commands import encoder
from contracts.connection import shown
from domains.identity.commands import RegisterUser
from reactor import supervisor
from reactor.cli import run_tool
from reactor.consumer import retry_delay
from reactor.supervisor import cluster_bases
from reactor.watch import describe
from tests.conftest import REGISTRY
from tests.helpers import envelope, make_notice

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


def test_metrics_render_prometheus_text_with_hops_by_domain() -> None:
    m = Metrics(REGISTRY)
    m.command_accepted("CreateLocation")
    m.command_accepted("CreateLocation")
    m.waiters.set_function(lambda: 3)
    at = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    t = at.timestamp()
    timings = {"started": t + 0.001, "appending": t + 0.002, "appended": t + 0.003,
               "decided": t + 0.004, "sent": t + 0.005}  # fmt: skip
    notice = make_notice(at=at, timings=timings)
    m.observe_notice(notice, received_at=t + 0.006)
    text = m.render().decode()
    assert 'notify_commands_accepted_total{domain="locations",type="CreateLocation"} 2.0' in text
    assert "notify_relay_waiters 3.0" in text
    for hop in ("to_reactor", "decide", "append", "views", "notice", "relay"):
        assert f'notify_hop_seconds_count{{domain="locations",hop="{hop}"}} 1.0' in text, hop
    # each of those hops took 1 ms: counted in the 2 ms bucket, not the 0.5 ms one
    assert 'notify_hop_seconds_bucket{domain="locations",hop="decide",le="0.002"} 1.0' in text
    assert 'notify_hop_seconds_bucket{domain="locations",hop="decide",le="0.0005"} 0.0' in text


def test_retry_delay_backs_off_and_caps() -> None:
    assert [retry_delay(n) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]
    assert retry_delay(20) == 30.0


def test_watch_describes_undecodable_messages_without_failing() -> None:
    assert "undecodable" in describe("cmd.X.1", b"{nope")


def test_watch_masks_secret_like_fields() -> None:
    """A sign-up's command and event carry the password's argon2 hash: not on a screen."""
    registered = b'{"email":"a@b.cd","password_hash":"$argon2id$v=19$abc","display_name":"Ada"}'
    line = describe("ev.user.u1", registered)
    assert "argon2" not in line
    assert '"password_hash":"***"' in line
    assert '"display_name":"Ada"' in line
    command = encoder.encode(envelope(RegisterUser("a@b.cd", "$argon2id$v=19$abc", "Ada")))
    assert "argon2" not in describe("cmd.RegisterUser.x", command)
    assert describe("ev.location.l1", b'{"name":"Leeds"}').endswith('{"name":"Leeds"}')
    nested = describe("ev.x.1", b'{"users":[{"name":"A","api_token":"t0k3n"}]}')
    assert "t0k3n" not in nested


def test_a_nats_url_is_logged_without_its_user_and_password() -> None:
    urls = "nats://bob:s3cret@127.0.0.1:4222, tls://token@n2:4223,nats://n3:4224"
    assert shown(urls) == "nats://***@127.0.0.1:4222, tls://***@n2:4223,nats://n3:4224"
    assert shown("bob:p@ss@h:4222,h2:4222") == "***@h:4222,h2:4222"  # no scheme, an @ in it


async def _interrupted() -> int:
    raise KeyboardInterrupt


async def _refused() -> int:
    raise nats.js.errors.BucketNotFoundError()


def test_a_tool_interrupted_or_refused_by_nats_says_so_in_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run_tool("dlq", _interrupted()) == 130
    assert capsys.readouterr().err == "dlq: interrupted\n"
    assert run_tool("rebuild", _refused()) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("rebuild: NATS refused or did not answer: ")


def test_task_up_takes_a_nats_url_without_a_port_and_refuses_a_port_that_is_not_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cluster_bases({"NATS_URL": "nats://127.0.0.1"})[0] == 4222
    assert cluster_bases({"NATS_URL": "127.0.0.1:4333"})[0] == 4333
    assert asyncio.run(supervisor.run({"API_PORT": "abc"}, dev=False)) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("up: a port in the settings is not a number")


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


@pytest.mark.parametrize(
    ("host", "secret", "refused"),
    [
        ("127.0.0.1", None, False),
        ("::1", None, False),
        ("localhost", None, False),
        ("0.0.0.0", None, True),
        ("192.0.2.7", None, True),
        ("api.example.org", None, True),
        ("0.0.0.0", "a-long-random-secret", False),
    ],
)
def test_the_api_will_not_listen_beyond_this_machine_with_the_dev_secret(
    host: str, secret: str | None, refused: bool
) -> None:
    env = {"API_HOST": host, **({"SESSION_SECRET": secret} if secret else {})}
    reason = exposed_with_the_dev_secret(Settings.from_env(env))
    assert (reason is not None) == refused
    if reason is not None:
        assert "SESSION_SECRET is not set" in reason
        assert host in reason
