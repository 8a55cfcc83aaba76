"""`python -m api`: serve the API with uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys

import uvicorn
from nats.aio.client import Client

from api.app import create_app
from api.protocol import GuardedHttpToolsProtocol
from api.settings import Settings
from contracts.connection import Interrupted, NatsUnavailable, wait_until_reachable
from contracts.registry import RegistryError
from contracts.topology import LegacyStore, refuse_legacy_store
from domains import registry as default_registry


def guarded_protocol(settings: Settings) -> type[GuardedHttpToolsProtocol]:
    """The HTTP protocol class, with this configuration's deadlines and limits."""
    return type(
        "GuardedHttpTools",
        (GuardedHttpToolsProtocol,),
        {"header_timeout": settings.header_timeout, "max_header_bytes": settings.max_header_bytes},
    )


def main() -> int:
    settings = Settings.from_env()
    try:
        registry = default_registry()
    except RegistryError as exc:
        print(f"api: {exc}", file=sys.stderr)
        return 1

    async def preflight(nc: Client) -> None:
        await refuse_legacy_store(nc.jetstream(), registry.legacy_buckets())

    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    config = uvicorn.Config(
        create_app(settings, registry=registry),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
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
    except (NatsUnavailable, LegacyStore) as exc:
        print(f"api: {exc}", file=sys.stderr)
        return 1
    except Interrupted:
        return 130
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises Ctrl-C after shutting down
        uvicorn.Server(config).run()
    return 0
