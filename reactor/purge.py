"""`python -m reactor.purge` (`task purge`): delete every stream, consumer and bucket.

Asks first; `--yes` skips the question (and is required without a terminal).
Refuses while an API or a reactor is connected to the server (it asks the
server's monitoring endpoint, NATS_MONITOR_URL, which connections there are):
purged under them, they would go on with streams and buckets recreated half
way. Stop them, purge, start them again: they recreate everything empty.
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

from nats.js.errors import NotFoundError

from contracts.topology import stream_names
from domains import registry as default_registry
from reactor.cli import nats_client, run_tool


async def purge() -> int:
    deleted = []
    async with nats_client("purge") as nc:
        js = nc.jetstream()
        rebuilt = [
            info.config.name
            for info in await js.streams_info()
            if info.config.name and _is_rebuilt_version(info.config.name)
        ]
        for name in [*stream_names(default_registry().buckets), *rebuilt]:
            with contextlib.suppress(NotFoundError):
                await js.delete_stream(name)  # its consumers go with it
                deleted.append(name)
    print(f"purge: deleted {', '.join(deleted) or 'nothing (already empty)'}")
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
    connected = service_connections(os.environ.get("NATS_MONITOR_URL", "http://127.0.0.1:8222"))
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


def service_connections(monitor_url: str) -> list[str]:
    """The API and reactor connections the server has ("2 reactor, 1 api"); none if its
    monitoring endpoint cannot be read (then nothing can be told, and purge goes on)."""
    try:
        with urllib.request.urlopen(f"{monitor_url}/connz?limit=1024", timeout=2) as answer:
            connz = json.loads(answer.read())
    except (OSError, ValueError):
        return []
    names = Counter(c.get("name", "") for c in connz.get("connections", []))
    return [f"{names[n]} {n}" for n in ("api", "reactor") if names[n]]


if __name__ == "__main__":
    sys.exit(main())
