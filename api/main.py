"""`python -m api`: serve the API with uvicorn."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import logging
import socket
import sys
from collections.abc import Sequence

import uvicorn
from nats.aio.client import Client

from api.app import create_app, prepare_store
from api.protocol import GuardedHttpToolsProtocol
from api.session import DEV_SECRET
from api.settings import Settings
from contracts import logs
from contracts.cli import program
from contracts.connection import Interrupted, NatsUnavailable, wait_until_reachable
from contracts.registry import RegistryError
from contracts.topology import LegacyStore, StoreUnsupported
from domains import registry as default_registry


def guarded_protocol(settings: Settings) -> type[GuardedHttpToolsProtocol]:
    """The HTTP protocol class, with this configuration's deadlines and limits."""
    return type(
        "GuardedHttpTools",
        (GuardedHttpToolsProtocol,),
        {"header_timeout": settings.header_timeout, "max_header_bytes": settings.max_header_bytes},
    )


class Server(uvicorn.Server):
    """uvicorn's server, saying where it listens once it does (the port it really got)."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self.servers:
            host, port = self.servers[0].sockets[0].getsockname()[:2]
            logging.getLogger("api").info("API ready: open http://%s:%d", host, port)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=program("api"),
        description="Serve the API and the page (uvicorn). Configured by environment "
        "variables, each with a working local default: NATS_URL, NATS_API_USER, "
        "NATS_API_PASSWORD, API_HOST, API_PORT (0: any free port), NOTICE_TIMEOUT, "
        "MAX_BODY_BYTES, SESSION_SECRET, TRUSTED_PROXIES, LOG_LEVEL and more "
        "(README: Configuration).",
    )
    return parser.parse_args(argv)


def exposed_with_the_dev_secret(settings: Settings) -> str | None:
    """Why not to start: listening beyond this machine with the development session
    secret, which anyone can read here, and so forge any session's cookie."""
    if settings.session_secret != DEV_SECRET or _loopback(settings.host):
        return None
    return (
        f"SESSION_SECRET is not set: refusing to listen on {settings.host} with the "
        "development secret (anyone could forge session cookies); set it to a long random "
        "value, the same on every API instance"
    )


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def main(argv: Sequence[str] | None = None) -> int:
    parse_args(sys.argv[1:] if argv is None else argv)
    settings = Settings.from_env()
    if (refused := exposed_with_the_dev_secret(settings)) is not None:
        print(f"api: {refused}", file=sys.stderr)
        return 1
    if settings.session_secret == DEV_SECRET and not settings.dev:
        # Loopback, so allowed: but behind a reverse proxy this is a public secret.
        print(
            "api: warning: SESSION_SECRET is not set: session cookies are signed with the "
            "development secret, which anyone can read (fine for development only)",
            file=sys.stderr,
        )
    try:
        registry = default_registry()
    except RegistryError as exc:
        print(f"api: {exc}", file=sys.stderr)
        return 1

    async def preflight(nc: Client) -> None:
        # Here as well as in the lifespan: a legacy store, or one NATS cannot keep as
        # asked (NATS_REPLICAS), is then one line, not uvicorn's start-up traceback.
        await prepare_store(nc.jetstream(), settings, registry)

    logs.configure(settings.log_level)
    config = uvicorn.Config(
        create_app(settings, registry=registry),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        log_config=None,  # uvicorn's lines go through the process's own (plain or JSON)
        timeout_graceful_shutdown=5,
        access_log=settings.access_log,
        # Only a listed proxy may say who the client is (X-Forwarded-For): the
        # client address counts for the stream and sign-in limits.
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=settings.trusted_proxies or None,
        http=guarded_protocol(settings),
    )
    try:
        # Waiting here rather than in the lifespan keeps Ctrl-C prompt and a
        # missing server one line instead of uvicorn's start-up traceback.
        asyncio.run(wait_until_reachable(settings.nats, "api-probe", preflight))
    except (NatsUnavailable, LegacyStore, StoreUnsupported) as exc:
        print(f"api: {exc}", file=sys.stderr)
        return 1
    except Interrupted:
        return 130
    sockets = [shared_socket(settings.host, settings.port)] if settings.reuse_port else None
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises Ctrl-C after shutting down
        Server(config).run(sockets=sockets)
    return 0


def shared_socket(host: str, port: int) -> socket.socket:
    """A listening socket other processes may bind too (SO_REUSEPORT): the kernel
    hands each new connection to one of them."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock
