"""`python -m reactor.purge` (`task purge`): delete every stream, consumer and bucket.

Asks first; `--yes` skips the question (and is required without a terminal).
Everything is recreated empty when the API or a reactor starts. Restart them
after a purge: a running reactor recreates the streams when it binds again,
but processes keep the view version they had (after a `task rebuild`,
buckets that no longer exist).
"""

from __future__ import annotations

import argparse
import contextlib
import re
import sys

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
    if not args.yes:
        if not sys.stdin.isatty():
            print(
                "purge: refusing to delete without a terminal to ask; pass --yes", file=sys.stderr
            )
            return 2
        answer = input(f"Delete {names} and every command, event, notice and view in them? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("purge: nothing deleted")
            return 1
    return run_tool("purge", purge())


if __name__ == "__main__":
    sys.exit(main())
