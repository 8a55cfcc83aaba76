"""`python -m reactor.watch` (`task watch`): print commands, events and notices as they flow.

A line per message: the time, what it is, its id and a short summary; the
value of a field named like a password, secret, token or hash (a sign-up's
`password_hash`) is shown as `***`. Commands and events are read from their
streams (an ordered consumer each, from the newest on: ephemeral, gone when
it stops), so what is shown was stored: an append the store refused (a
conflict) or a command sent again and dropped as a duplicate is not, and a
keyed event (for an aggregator) shows under the subject it is stored at. Notices
are their live copies, which the store republishes once stored. Read-only.
Ctrl-C stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import DeliverPolicy

from contracts import tracing
from contracts.commands import command_decoder
from contracts.notices import notice_decoder
from contracts.topology import (
    COMMANDS_ALL,
    COMMANDS_STREAM,
    EVENTS_ALL,
    EVENTS_STREAM,
    LIVE_NOTICES_ALL,
)
from reactor.cli import nats_client, run_tool


def describe(subject: str, data: bytes, headers: Mapping[str, str] | None = None) -> str:
    """One line for one message (pure), ending with its trace id when it has one."""
    line = _what(subject, data)
    trace = tracing.trace_id((headers or {}).get(tracing.HEADER))
    return f"{line}  trace={trace}" if trace else line


def _what(subject: str, data: bytes) -> str:
    stamp = datetime.now().strftime("%H:%M:%S.%f")[:-3]
    try:
        if subject.startswith("cmd."):
            cmd = command_decoder.decode(data)
            body = _masked(bytes(cmd.payload))
            return f"{stamp}  command  {cmd.command_id}  {cmd.type} {body}"
        if subject.startswith("ev."):
            return f"{stamp}  event    {subject}  {_masked(data)}"
        notice = notice_decoder.decode(data)
        if notice.status == "succeeded":
            what = notice.resource_url or ""
        else:
            what = notice.error.detail if notice.error else ""
        return f"{stamp}  notice   {notice.command_id}  {notice.status.upper()} {what}"
    except msgspec.DecodeError as exc:
        return f"{stamp}  ???      {subject}  undecodable ({exc})"


SECRET: Final = re.compile(r"pass|secret|token|hash", re.IGNORECASE)


def _masked(data: bytes) -> str:
    """JSON with the values of its secret-like fields masked, at any depth (else as it is)."""
    try:
        value = msgspec.json.decode(data)
    except msgspec.DecodeError:
        return data.decode(errors="replace")
    masked = _mask(value)
    return (
        data.decode(errors="replace") if masked == value else msgspec.json.encode(masked).decode()
    )


def _mask(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: "***" if SECRET.search(k) else _mask(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v) for v in value]
    return value


async def watch() -> int:
    async with nats_client("watch") as nc:
        await follow(nc)
    return 0


async def follow(nc: Client) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    async def show(msg: Msg) -> None:
        print(describe(msg.subject, msg.data, msg.headers), flush=True)

    js = nc.jetstream()
    for stream, subject in ((COMMANDS_STREAM, COMMANDS_ALL), (EVENTS_STREAM, EVENTS_ALL)):
        await js.subscribe(
            subject, stream=stream, cb=show, ordered_consumer=True, deliver_policy=DeliverPolicy.NEW
        )
    await nc.subscribe(LIVE_NOTICES_ALL, cb=show)
    print(
        f"watching {COMMANDS_ALL}, {EVENTS_ALL} and {LIVE_NOTICES_ALL} (Ctrl-C to stop)", flush=True
    )
    await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    argparse.ArgumentParser(prog="python -m reactor.watch", description=__doc__).parse_args(argv)
    return run_tool("watch", watch())


if __name__ == "__main__":
    sys.exit(main())
