"""`python -m reactor.migrate` (`task migrate`): move a store of the previous version onto EVENTS.

The previous version kept its views in KV, built from the commands, with no
event store; the API and the reactor refuse to start on such a store and say
to run this. It:

1. reads each record of the buckets the domains declare (`LegacyBucket`), in
   the version the old pointer (`projections.active`) names, and appends the
   events that make it now (`read(key, value)`), each aggregate with expected
   sequence 0 (so a second run appends nothing), and reserves its unique
   values;
2. folds EVENTS into the views in use;
3. deletes the previous version's buckets (every version of them, and the
   old pointer). COMMANDS and NOTICES are kept as they are.

Stop the API and the reactors first; start them again afterwards.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime

import msgspec
from nats.js import JetStreamContext
from nats.js.errors import KeyDeletedError, KeyNotFoundError, NotFoundError

from contracts.commands import NO_SESSION, Command, derived_command_id
from contracts.connection import NatsSettings
from contracts.lookups import bucket_keys
from contracts.registry import Registry
from contracts.topology import (
    LEGACY_POINTER_BUCKET,
    RESERVATIONS_BUCKET,
    ensure_topology,
    legacy_buckets,
)
from contracts.views import ViewBuckets, read_pointer
from domains import registry as default_registry
from reactor.cli import nats_client, run_tool
from reactor.eventstore import Conflict, EventStore
from reactor.rebuild import Fold
from reactor.reservations import Reservations


class _OldPointer(msgspec.Struct):
    version: int


async def old_version(js: JetStreamContext) -> int:
    try:
        kv = await js.key_value(LEGACY_POINTER_BUCKET)
        entry = await kv.get("active")
    except (NotFoundError, KeyNotFoundError, KeyDeletedError):
        return 1
    return msgspec.json.decode(entry.value or b"", type=_OldPointer).version


def _versioned(bucket: str, version: int) -> str:
    return bucket if version == 1 else f"{bucket}_v{version}"


async def migrate(js: JetStreamContext, store: EventStore, registry: Registry) -> Counter[str]:
    """Import, fold, drop; what happened, counted."""
    done: Counter[str] = Counter()
    version = await old_version(js)
    reservations = Reservations(await js.key_value(RESERVATIONS_BUCKET))
    for domain in registry.domains:
        for legacy in domain.legacy:
            if legacy.read is None:
                continue
            bucket = _versioned(legacy.bucket, version)
            try:
                kv = await js.key_value(bucket)
            except NotFoundError:
                continue
            for key in await bucket_keys(js, bucket):
                try:
                    entry = await kv.get(key)
                except (KeyNotFoundError, KeyDeletedError):
                    continue
                imported = legacy.read(key, entry.value or b"")
                if imported is None:
                    continue
                command_id = derived_command_id("migrate", bucket, key)
                origin = Command(
                    command_id=command_id,
                    type="Migrate",
                    aggregate_id=imported.aggregate_id,
                    submitted_at=imported.at,
                    session_id=NO_SESSION,
                    correlation_id=command_id,
                    payload=msgspec.Raw(b"{}"),
                )
                for scope, value in imported.reserve:
                    await reservations.claim(scope, value, imported.aggregate_id)
                try:
                    await store.append(
                        origin, imported.aggregate, imported.events, expected=0, at=imported.at
                    )
                    done["imported"] += 1
                except Conflict:
                    done["already there"] += 1
    fold = Fold(
        js, registry, ViewBuckets(js, await read_pointer(js)), list(registry.views.values())
    )
    try:
        await fold.until_caught_up()
    finally:
        await fold.close()
    for name in await _all_versions(js, await legacy_buckets(js, registry.legacy_buckets())):
        await js.delete_stream(f"KV_{name}")
        done["buckets dropped"] += 1
    return done


async def _all_versions(js: JetStreamContext, names: list[str]) -> list[str]:
    """The buckets `names` and every `<name>_v<N>` of theirs in the store."""
    pattern = re.compile(rf"KV_({'|'.join(map(re.escape, names))})(_v\d+)?") if names else None
    found = []
    for info in await js.streams_info():
        name = info.config.name or ""
        if pattern is not None and pattern.fullmatch(name):
            found.append(name.removeprefix("KV_"))
    return found


async def run() -> int:
    registry = default_registry()
    async with nats_client("migrate") as nc:
        js = nc.jetstream()
        legacy = await legacy_buckets(js, registry.legacy_buckets())
        if not legacy:
            print("migrate: nothing to do (no buckets of the previous version)")
            return 0
        print(f"migrate: moving {', '.join(legacy)} onto EVENTS")
        await ensure_topology(js, registry.buckets, replicas=NatsSettings.from_env().replicas)
        done = await migrate(js, EventStore(nc, registry), registry)
        print(
            "migrate: "
            + ", ".join(f"{n} {what}" for what, n in sorted(done.items()))
            + f"; done at {datetime.now(UTC):%H:%M:%S}. Start the API and the reactors again."
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argparse.ArgumentParser(prog="python -m reactor.migrate", description=__doc__).parse_args(argv)
    return run_tool("migrate", run())


if __name__ == "__main__":
    sys.exit(main())
