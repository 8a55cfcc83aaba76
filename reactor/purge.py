"""`python -m reactor.purge` (`task purge`): delete every stream, consumer and bucket.

Asks first; `--yes` skips the question (and is required without a terminal).
Refuses while an API or a reactor is connected to a server (it asks each
server's monitoring endpoint, NATS_MONITOR_URL's list, by default one per
server of NATS_URL from NATS_MONITOR_PORT on, which connections there are):
purged under them, they would go on with streams and buckets recreated half
way. An endpoint that cannot be read is said, and the purge goes on. Stop
them, purge, start them again: they recreate everything empty.

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
from collections.abc import Mapping
from typing import Final

from nats.js.errors import NotFoundError

from contracts.connection import DEFAULT_URL, addresses
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
    monitors = monitor_urls(os.environ)
    connected, unread = service_connections(monitors)
    if unread:
        print(
            f"purge: could not ask nats-server at {', '.join(unread)} (NATS_MONITOR_URL) "
            "whether an API or a reactor is connected: make sure none is",
            file=sys.stderr,
        )
    if connected:
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


def monitor_urls(env: Mapping[str, str]) -> list[str]:
    """Every server's monitoring endpoint (pure): NATS_MONITOR_URL's list, or one per
    server of NATS_URL, on its host, at NATS_MONITOR_PORT (8222) and each next one, as
    `task cluster:up` lays them out."""
    if listed := env.get("NATS_MONITOR_URL"):
        return [url.strip() for url in listed.split(",") if url.strip()]
    first = int(env.get("NATS_MONITOR_PORT", "8222"))
    hosts = [server.hostname for server in addresses(env.get("NATS_URL", DEFAULT_URL))]
    return [f"http://{host or '127.0.0.1'}:{first + i}" for i, host in enumerate(hosts)]


def service_connections(monitor_urls: list[str]) -> tuple[list[str], list[str]]:
    """The API and reactor connections the servers have ("2 reactor, 1 api"), and the
    endpoints that could not be read (of those nothing can be told)."""
    names: Counter[str] = Counter()
    unread = []
    for url in monitor_urls:
        try:
            with urllib.request.urlopen(f"{url}/connz?limit=1024", timeout=2) as answer:
                connz = json.loads(answer.read())
        except (OSError, ValueError):
            unread.append(url)
            continue
        names.update(c.get("name", "") for c in connz.get("connections", []))
    return [f"{names[n]} {n}" for n in ("api", "reactor") if names[n]], unread


if __name__ == "__main__":
    sys.exit(main())
