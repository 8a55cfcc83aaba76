"""`python -m reactor.purge` (`task purge`): delete every stream, consumer and bucket.

Asks first; `--yes` skips the question (and is required without a terminal).
Everything is recreated empty by a running reactor (it binds again) or by the
next start of the API or a reactor.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from nats.js.errors import NotFoundError

from contracts.connection import NatsSettings, NatsUnavailable, connect
from contracts.topology import stream_names


async def purge() -> list[str]:
    nc = await connect(NatsSettings.from_env(), name="purge")
    deleted = []
    try:
        js = nc.jetstream()
        for name in stream_names():
            try:
                await js.delete_stream(name)  # its consumers go with it
                deleted.append(name)
            except NotFoundError:
                pass
    finally:
        await nc.close()
    return deleted


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reactor.purge", description=__doc__)
    parser.add_argument("--yes", action="store_true", help="do not ask")
    args = parser.parse_args(argv)
    names = ", ".join(stream_names())
    if not args.yes:
        if not sys.stdin.isatty():
            print(
                "purge: refusing to delete without a terminal to ask; pass --yes", file=sys.stderr
            )
            return 2
        answer = input(f"Delete {names} and every command, notice and location in them? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("purge: nothing deleted")
            return 1
    try:
        deleted = asyncio.run(purge())
    except NatsUnavailable as exc:
        print(f"purge: {exc}", file=sys.stderr)
        return 1
    print(f"purge: deleted {', '.join(deleted) or 'nothing (already empty)'}")
    print("purge: a running reactor recreates them empty within seconds; so does the next start")
    return 0


if __name__ == "__main__":
    sys.exit(main())
