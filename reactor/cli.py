"""What the operator tools (watch, status, dlq, purge, rebuild) share."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import msgspec
import nats.errors
from nats.aio.client import Client

from contracts.connection import NatsSettings, NatsUnavailable, connect


@asynccontextmanager
async def nats_client(name: str) -> AsyncIterator[Client]:
    """A connection configured from the environment (NATS_URL, credentials), closed after.

    A tool waits 5 s for NATS, not the services' 15 s, unless NATS_STARTUP_TIMEOUT says.
    """
    settings = NatsSettings.from_env()
    if "NATS_STARTUP_TIMEOUT" not in os.environ:
        settings = msgspec.structs.replace(settings, startup_timeout=5.0)
    nc = await connect(settings, name=name)
    try:
        yield nc
    finally:
        await nc.close()


def run_tool(name: str, main: Coroutine[Any, Any, int]) -> int:
    """Run a tool's coroutine. No NATS, or a NATS error on the way (a stream or bucket
    missing, a timeout), is one clear line and exit status 1; Ctrl-C is one line and
    130 (what was done before it is as the tool's own lines said)."""
    try:
        return asyncio.run(main)
    except NatsUnavailable as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
    except nats.errors.Error as exc:
        what = str(exc) or type(exc).__name__
        print(f"{name}: NATS refused or did not answer: {what}", file=sys.stderr)
        return 1
