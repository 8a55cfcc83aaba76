"""`python -m reactor.watch` (`task watch`): print commands and notices as they flow.

A line per message: the time, what it is, the command id and a short summary.
Read-only: plain subscriptions, no consumer is created. Ctrl-C stops it.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from datetime import datetime

import msgspec
from nats.aio.msg import Msg

from contracts.commands import command_decoder
from contracts.connection import NatsSettings, NatsUnavailable, connect
from contracts.notices import notice_decoder
from contracts.topology import LIVE_NOTICES_ALL

COMMANDS = "cmd.>"


def describe(subject: str, data: bytes) -> str:
    """One line for one message (pure)."""
    stamp = datetime.now().strftime("%H:%M:%S.%f")[:-3]
    try:
        if subject.startswith("cmd."):
            cmd = command_decoder.decode(data)
            body = msgspec.json.encode(cmd.payload).decode()
            return f"{stamp}  command  {cmd.command_id}  {cmd.type} {body}"
        notice = notice_decoder.decode(data)
        if notice.status == "succeeded":
            what = notice.resource_url or ""
        else:
            what = notice.error.detail if notice.error else ""
        return f"{stamp}  notice   {notice.command_id}  {notice.status.upper()} {what}"
    except msgspec.DecodeError as exc:
        return f"{stamp}  ???      {subject}  undecodable ({exc})"


async def watch() -> None:
    nc = await connect(NatsSettings.from_env(), name="watch")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    async def show(msg: Msg) -> None:
        print(describe(msg.subject, msg.data), flush=True)

    await nc.subscribe(COMMANDS, cb=show)
    await nc.subscribe(LIVE_NOTICES_ALL, cb=show)
    print(f"watching {COMMANDS} and {LIVE_NOTICES_ALL} (Ctrl-C to stop)", flush=True)
    await stop.wait()
    await nc.close()


def main() -> int:
    try:
        asyncio.run(watch())
    except NatsUnavailable as exc:
        print(f"watch: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
