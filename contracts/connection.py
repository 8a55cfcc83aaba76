"""Connecting to NATS the same way from every process.

nats-py's connect() retries an unreachable server for about two minutes and
logs a traceback per attempt (PITFALLS.md). Here start-up waits a bounded
time, logs one line per distinct error, and then fails with one clear line;
once connected the client reconnects for ever.

nats-py awaits its disconnected and reconnected callbacks inside its reconnect
task. An exception from the reconnected one (a JetStream request that times
out while a cluster elects, say) sends that task round its loop again without
stopping the read loop it has just started: it leaks a connection, and the
stale read loop can then read the new socket while the next handshake does,
which kills the reconnect task for good (`RuntimeError: readuntil() called
while another coroutine is already waiting`) and leaves the client
disconnected until its process restarts. So a process's reconnected callback
runs in a task of its own, its failure logged, and the disconnected one never
lets an exception through.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
from collections.abc import Awaitable, Callable, Mapping
from typing import Final, Literal, TypeVar
from urllib.parse import SplitResult, urlsplit

import msgspec
import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client

log = logging.getLogger(__name__)
# The user and password of a URL (scheme://user:password@host): never logged.
_USERINFO: Final = re.compile(r"^(\s*(?:[a-z]+://)?)[^/]*@", re.IGNORECASE)

DEFAULT_URL: Final = "nats://127.0.0.1:4222"
# Each process connects as its role's user (nats.conf gives each only what it
# needs); these are the local development defaults.
Role = Literal["api", "reactor", "operator"]
DEFAULT_USER: Final = "notify-operator"
DEFAULT_PASSWORD: Final = "notify-operator-dev"


def role_credentials(env: Mapping[str, str], role: Role) -> tuple[str, str]:
    """`NATS_<ROLE>_USER` and `NATS_<ROLE>_PASSWORD`, or the development defaults."""
    prefix = f"NATS_{role.upper()}_"
    return env.get(prefix + "USER", f"notify-{role}"), env.get(
        prefix + "PASSWORD", f"notify-{role}-dev"
    )


class NatsSettings(msgspec.Struct, frozen=True):
    url: str = DEFAULT_URL
    user: str | None = DEFAULT_USER
    password: str | None = DEFAULT_PASSWORD
    creds_file: str | None = None
    startup_timeout: float = 15.0
    # The event store's size limit in bytes (-1: none). Full means new events are
    # refused (commands fail and retry), never that old ones are dropped.
    events_max_bytes: int = -1
    # How long COMMANDS and EVENTS drop a repeated Nats-Msg-Id (seconds). Beyond it,
    # the aggregates' own records keep effects once (tests shorten it to show that).
    duplicate_window: float = 120.0
    # How many servers of a cluster keep each stream and bucket (1 on a single server).
    replicas: int = 1

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ, role: Role = "operator") -> NatsSettings:
        creds = env.get("NATS_CREDS") or None
        user, password = role_credentials(env, role)
        return cls(
            url=env.get("NATS_URL", DEFAULT_URL),
            # A creds file (JWT) replaces user/password.
            user=None if creds else user,
            password=None if creds else password,
            creds_file=creds,
            startup_timeout=float(env.get("NATS_STARTUP_TIMEOUT", "15")),
            events_max_bytes=int(env.get("EVENTS_MAX_BYTES", "-1")),
            duplicate_window=float(env.get("NATS_DUPLICATE_WINDOW", "120")),
            replicas=int(env.get("NATS_REPLICAS", "1")),
        )

    @property
    def servers(self) -> list[str]:
        """NATS_URL's servers: one URL, or several separated by commas (a cluster's)."""
        return servers(self.url)


def servers(url: str) -> list[str]:
    """A NATS_URL's servers (pure): one URL, or several separated by commas."""
    return [server.strip() for server in url.split(",") if server.strip()]


def addresses(url: str) -> list[SplitResult]:
    """A NATS_URL's servers, parsed (pure): `host:port` is taken as `nats://host:port`."""
    return [urlsplit(s if "://" in s else f"nats://{s}") for s in servers(url)]


class NatsUnavailable(RuntimeError):
    """NATS could not be reached within the start-up timeout."""


Callback = Callable[[], Awaitable[None]]


async def close(nc: Client) -> None:
    """Close the connection, also when its server is gone: nats-py then writes its
    pending bytes to a transport already closed, which uvloop refuses with a
    RuntimeError, and a stopping process would end with a traceback.

    Requests still waiting on a reply fail at once (ConnectionClosedError): nats-py's
    close ends its subscriptions' waits but leaves its requests to their timeouts,
    so a process stopping with its server gone waited those out."""
    try:
        await nc.close()
    except RuntimeError as exc:
        log.debug("closed with the server gone: %s", exc)
    for waiting in list(nc._resp_map.values()):
        if not waiting.done():
            waiting.set_exception(nats.errors.ConnectionClosedError())
            waiting.exception()  # raised to its request, if one still awaits it; else no log


async def connect(
    settings: NatsSettings,
    name: str,
    *,
    reconnected_cb: Callback | None = None,
    disconnected_cb: Callback | None = None,
    stop: asyncio.Event | None = None,
) -> Client:
    """Connect within `settings.startup_timeout` or raise NatsUnavailable (one line).

    If `stop` is set first (a signal during start-up), raise Interrupted.
    """
    seen: list[str] = []

    async def on_error(exc: Exception) -> None:
        text = f"{type(exc).__name__}: {exc}".rstrip(": ")
        if text not in seen:
            seen.append(text)
            # Before the first connection, NatsUnavailable's one line names the last
            # error: a warning too made a tool's answer two lines saying one thing.
            level = logging.WARNING if client else logging.INFO
            log.log(level, "NATS %s: %s", shown(settings.url), text)

    client: list[Client] = []

    async def on_disconnect() -> None:
        if client and (client[0].is_closed or client[0].is_draining):
            return  # our own close(), not an outage
        log.warning("NATS disconnected; reconnecting")
        if disconnected_cb is not None:
            try:
                await disconnected_cb()
            except Exception:
                log.exception("after a disconnect from NATS")

    after_reconnect: set[asyncio.Future[None]] = set()

    def finished(task: asyncio.Future[None]) -> None:
        after_reconnect.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("after a reconnect to NATS: %s: %s", type(exc).__name__, exc)

    async def on_reconnect() -> None:
        log.info("NATS reconnected")
        seen.clear()  # the next outage's errors are news again
        if reconnected_cb is not None:
            # Not awaited here: nats-py's reconnect must neither wait on it nor see it fail.
            task = asyncio.ensure_future(reconnected_cb())
            after_reconnect.add(task)
            task.add_done_callback(finished)

    options: dict[str, object] = {}
    if settings.creds_file:
        options["user_credentials"] = settings.creds_file
    elif settings.user:
        options["user"] = settings.user
        options["password"] = settings.password or ""
    attempt = asyncio.ensure_future(
        nats.connect(
            settings.servers,
            name=name,
            connect_timeout=2,
            reconnect_time_wait=0.5,
            max_reconnect_attempts=-1,
            error_cb=on_error,
            disconnected_cb=on_disconnect,
            reconnected_cb=on_reconnect,
            **options,
        )
    )
    stopped = asyncio.ensure_future(stop.wait() if stop is not None else asyncio.Event().wait())
    try:
        await asyncio.wait(
            {attempt, stopped},
            timeout=settings.startup_timeout,
            return_when=asyncio.FIRST_COMPLETED,
        )
    finally:
        stopped.cancel()
    if attempt.done() and attempt.exception() is None:
        client.append(attempt.result())
        return client[0]
    attempt.cancel()
    if stop is not None and stop.is_set():
        raise Interrupted("stopped while connecting to NATS")
    last = f" (last error: {seen[-1]})" if seen else ""
    raise NatsUnavailable(
        f"cannot connect to NATS at {shown(settings.url)} within "
        f"{settings.startup_timeout:g}s{last}"
    )


def shown(urls: str) -> str:
    """NATS_URL as it may be logged: a user and password in it are left out (pure)."""
    return ",".join(_USERINFO.sub(r"\1***@", url) for url in urls.split(","))


class Interrupted(RuntimeError):
    """A stop signal arrived before the connection was made."""


async def wait_until_reachable(
    settings: NatsSettings, name: str, check: Callable[[Client], Awaitable[None]] | None = None
) -> None:
    """Connect once, run `check`, and close: fail fast, with one line, before a server starts.

    SIGINT / SIGTERM while waiting raise Interrupted at once.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        nc = await connect(settings, name, stop=stop)
        try:
            if check is not None:
                await check(nc)
        finally:
            await nc.close()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


# What a request meets while a cluster elects a stream's leader (a server
# died, or a stream was just made) or while the client reconnects: worth
# asking again shortly. Every caller repeats a step that is safe to repeat
# (a publish with the same Nats-Msg-Id, a look before a change).
UNAVAILABLE: Final = (
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.errors.ConnectionReconnectingError,
    nats.js.errors.NoStreamResponseError,
    nats.js.errors.ServiceUnavailableError,
)

# "No stream answered" is what an election looks like for a moment, and what a
# missing stream looks like for ever: it is asked again for this long only.
NO_STREAM_PATIENCE: Final = 5.0

T = TypeVar("T")


async def while_unavailable(step: Callable[[], Awaitable[T]], *, within: float, what: str) -> T:
    """`step()`, asked again while NATS answers as unavailable (UNAVAILABLE), for up
    to `within` seconds (NO_STREAM_PATIENCE at most for "no stream answered"),
    waiting 0.1 s doubling to 1 s in between; then the last error."""
    loop = asyncio.get_running_loop()
    started, delay = loop.time(), 0.1
    while True:
        try:
            return await step()
        except UNAVAILABLE as exc:
            no_stream = isinstance(exc, nats.js.errors.NoStreamResponseError)
            patience = min(within, NO_STREAM_PATIENCE) if no_stream else within
            if loop.time() + delay > started + patience:
                raise
            log.info("NATS unavailable for %s (%s); asking again", what, type(exc).__name__)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
