"""`python -m reactor.purge` (`task purge`): delete every stream, consumer and bucket.

Asks first; `--yes` skips the question (and is required without a terminal).
Refuses while an API or a reactor is connected to the server (it asks the
server's monitoring endpoint, NATS_MONITOR_URL, by default on
NATS_MONITOR_PORT, which connections there are): purged under them, they
would go on with streams and buckets recreated half way; an endpoint that
cannot be read is said, and the purge goes on. Stop them, purge, start them
again: they recreate everything empty.

What is made from the event store goes first (views, their progress,
reservations, notices), the event store and the command log last, each said
as it goes: a purge stopped half way leaves no view ahead of the events
(run it again to finish).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import urllib.request
from collections import Counter
from typing import Final

from nats.js.errors import NotFoundError

from contracts.topology import COMMANDS_STREAM, EVENTS_STREAM, stream_names
from domains import registry as default_registry
from reactor.cli import nats_client, run_tool

LAST: Final = (EVENTS_STREAM, COMMANDS_STREAM)  # the sources, after what is made of them


async def purge() -> int:
    deleted = 0
    async with nats_client("purge") as nc:
        js = nc.jetstream()
        rebuilt = [
            info.config.name
            for info in await js.streams_info()
            if info.config.name and _is_rebuilt_version(info.config.name)
        ]
        names = [*stream_names(default_registry().buckets), *rebuilt]
        for name in [*(n for n in names if n not in LAST), *LAST]:
            with contextlib.suppress(NotFoundError):
                await js.delete_stream(name)  # its consumers go with it
                print(f"purge: deleted {name}", flush=True)
                deleted += 1
    if not deleted:
        print("purge: nothing to delete (already empty)")
    print("purge: restart the API and the reactors: they recreate everything empty at start")
    return 0


def _is_rebuilt_version(stream: str) -> bool:
    """KV_view_<name>_v3 and the like: view buckets made by `task rebuild`."""
    return re.fullmatch(r"KV_view_\w+_v\d+", stream) is not None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reactor.purge", description=__doc__)
    parser.add_argument("--yes", action="store_true", help="do not ask")
    args = parser.parse_args(argv)
    names = ", ".join(stream_names(default_registry().buckets)) + " (and rebuilt view versions)"
    if not args.yes and not sys.stdin.isatty():
        print("purge: refusing to delete without a terminal to ask; pass --yes", file=sys.stderr)
        return 2
    monitor = os.environ.get(
        "NATS_MONITOR_URL", f"http://127.0.0.1:{os.environ.get('NATS_MONITOR_PORT', '8222')}"
    )
    connected = service_connections(monitor)
    if connected is None:
        print(
            f"purge: could not ask nats-server at {monitor} (NATS_MONITOR_URL) whether an API "
            "or a reactor is connected: make sure none is",
            file=sys.stderr,
        )
    elif connected:
        print(
            f"purge: refused: {', '.join(connected)} connected to NATS; stop them first "
            "(Ctrl-C on `task up`), then purge",
            file=sys.stderr,
        )
        return 1
    if not args.yes:
        answer = input(f"Delete {names} and every command, event, notice and view in them? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("purge: nothing deleted")
            return 0
    return run_tool("purge", purge())


def service_connections(monitor_url: str) -> list[str] | None:
    """The API and reactor connections the server has ("2 reactor, 1 api"); None if its
    monitoring endpoint cannot be read (then nothing can be told)."""
    try:
        with urllib.request.urlopen(f"{monitor_url}/connz?limit=1024", timeout=2) as answer:
            connz = json.loads(answer.read())
    except (OSError, ValueError):
        return None
    names = Counter(c.get("name", "") for c in connz.get("connections", []))
    return [f"{names[n]} {n}" for n in ("api", "reactor") if names[n]]


if __name__ == "__main__":
    sys.exit(main())
