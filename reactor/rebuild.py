"""`python -m reactor.rebuild` (`task rebuild`): build every view again from EVENTS.

While the API and the reactors keep running:

1. create empty buckets for the next version (`view_<name>_v<N+1>`, ...),
   and say in the pointer that it is being built: from then on (after a
   grace period, for every process to see it) the reactors write their
   inline views into it as well as into the version in use;
2. fold every event, in stream order, through each view's pure `apply` into
   them (a computed view: make its records again from their inputs), until
   caught up with the stream; async views get their progress; records are
   checkpointed, so the fold and the reactors' writes of one event meet
   without applying it twice;
3. move the pointer (`view_versions.active`): every API and reactor process
   switches to the new buckets within milliseconds, and the inline views of
   every command told `succeeded` before are in them (read-your-writes
   holds across the switch);
4. after a grace period (for processes to see the move) fold what arrived
   meanwhile (the async views of the old version's last moments);
5. compare the new version with the old one and report.

A rebuild that stops before its switch takes its "being built" back; one
that left it behind (killed) is cleared by the next, before it drops what
the last one made. One rebuild at a time: the tool holds the lease `rebuild` in the `leases`
bucket (as a reactor holds a job's, renewed every RENEW_EVERY seconds) and
another is refused while it is held; the server forgets a killed rebuild's
lease LEASE_TTL seconds after its last renewal, by its own clock.

Aggregators are folded the same way, partition by partition, each written
with its guard: after the switch the reactors' workers go on from where the
rebuild left each partition, and the last catch-up beside them is safe
(whichever writer is behind is refused and reads again).

Nothing is decided again: views are derived from the events alone, so the
same events give the same views. The previous version's buckets are kept
(older ones dropped), so a bad rebuild can be undone with `python -m
reactor.rebuild --activate N`: the same steps into version N's buckets,
without emptying them (its records are checkpointed: the fold applies only
the events it missed while another version was live), then the switch, which
every process follows (a pointer's generation, not its version, says which
is newer). It moved the pointer alone before, and asked for a restart: the
commands handled since version N was left were missing from it (a location
told `succeeded` was then a 404).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any, Final

import nats.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from contracts.domain import Aggregator, Readable, View
from contracts.events import StoredEvent
from contracts.failing import describe
from contracts.registry import Registry
from contracts.topology import (
    EVENTS_STREAM,
    LEASE_TTL,
    LEASES_BUCKET,
    VIEW_PROGRESS,
    create_view_buckets,
    view_bucket,
)
from contracts.views import (
    Record,
    ViewBuckets,
    read_pointer,
    read_whole_pointer,
    write_pointer,
)
from domains import registry as default_registry
from reactor.aggregators import Refold
from reactor.cli import nats_client, run_tool
from reactor.leases import RENEW_EVERY, Lease
from reactor.reader import EventReader
from reactor.views import ViewWriter


class Fold:
    """Folds EVENTS, from the start, into one version's buckets for the given views."""

    def __init__(
        self, js: JetStreamContext, registry: Registry, buckets: ViewBuckets, views: Sequence[View]
    ) -> None:
        self.buckets = buckets
        self.views = list(views)
        types = [t for v in self.views for t in v.events]
        self._reader = EventReader(js, registry, registry.event_filter(types), 0)
        self._writer = ViewWriter(follows=True)  # every event, in order, from the first
        self.counts: Counter[str] = Counter()  # events applied per view

    async def until_caught_up(self) -> int:
        """Fold everything stored now; the position every view has reached.

        Asked after any batch that left nothing pending, not only once the stream is
        quiet: with commands arriving steadily (a batch within every wait), the fold
        never saw a quiet stream and a rebuild under load never finished."""
        while True:
            batch = await self._reader.next_batch(wait=0.2)
            if batch.last_seq is not None:
                await self._apply(batch.events)
            if not batch.caught_up:
                continue
            end = await self._reader.read_to_end()
            if end is None:
                continue  # on their way: not the end yet
            position = max(self._reader.position, end)
            for view in self.views:
                if not view.inline:
                    await self._writer.save_progress(self.buckets, view.name, position)
            return position

    async def _apply(self, events: list[StoredEvent]) -> None:
        for view in self.views:
            mine = [e for e in events if isinstance(e.event, view.events)]
            if not mine:
                continue
            try:
                if view.compute is not None:
                    await self._writer.recompute(self.buckets, view, mine)
                else:
                    await self._writer.apply(self.buckets, view, mine)
            except (nats.errors.Error, TimeoutError):
                raise
            except Exception as exc:  # the view's code: one line, not a traceback
                first, last = mine[0].meta.seq, mine[-1].meta.seq
                raise FoldFailed(
                    f"view {view.name} cannot apply the events {first} to {last}: {describe(exc)}"
                ) from exc
            self.counts[view.name] += len(mine)

    @property
    def position(self) -> int:
        """The last event read."""
        return self._reader.position

    async def close(self) -> None:
        await self._reader.close()


async def records(buckets: ViewBuckets, view: Readable) -> dict[str, Record]:
    """Every record of a view or an aggregator (not an aggregator's memos, positions...)."""
    keys = await buckets.keys(view.name, records_only=isinstance(view, Aggregator))
    return await buckets.records(view.name, keys)


async def differences(
    old: ViewBuckets, new: ViewBuckets, views: Iterable[Readable], upto: int
) -> list[str]:
    """How `new` differs from `old`, leaving out records `new` has taken further (later
    events). `upto`: the position of the switch, up to which `old` was kept: a record
    `new` has from before then (by `old`'s progress, for an async view) that `old`
    lacks is missing from the live version (only records of `old` were looked at:
    a version left behind by a rollback said it equalled the rebuild)."""
    found: list[str] = []
    for view in views:
        before, after = await records(old, view), await records(new, view)
        for key, was in before.items():
            now = after.get(key)
            if now is None:
                found.append(f"{view.name} {key}: missing from the rebuild")
            elif now.position < was.position:
                found.append(
                    f"{view.name} {key}: rebuilt up to {now.position}, live {was.position}"
                )
            elif now.position == was.position and bytes(now.state) != bytes(was.state):
                found.append(f"{view.name} {key}: differs at position {now.position}")
        if not isinstance(view, View) or view.compute is not None:
            continue  # an aggregator's or a computed record's position is not one event's
        kept = upto if view.inline else min(upto, await old.progress(view.name))
        for key, now in after.items():
            if key not in before and now.position <= kept:
                found.append(
                    f"{view.name} {key}: missing from the live version (rebuilt at"
                    f" position {now.position}, before the switch at {kept})"
                )
    return found


async def create_version(js: JetStreamContext, registry: Registry, version: int) -> None:
    """A version's buckets, kept by as many servers as the event store is."""
    replicas = (await js.stream_info(EVENTS_STREAM)).config.num_replicas or 1
    await create_view_buckets(js, registry.buckets, version, replicas=replicas)


LEASE_JOB: Final = "rebuild"  # its key in the leases bucket, beside the reactors' jobs
log = logging.getLogger(__name__)


class Busy(RuntimeError):
    """Another rebuild holds the lease."""


class FoldFailed(RuntimeError):
    """A view's code raised on an event: the rebuild stops (`live`: the version in use)."""

    live: int | None = None


class Held:
    """The rebuild lease, held while `lost` is False. Lost (this rebuild was paused past
    LEASE_TTL and another took the lease), the task that holds it is cancelled."""

    def __init__(self) -> None:
        self.lost = False


@contextlib.asynccontextmanager
async def one_at_a_time(js: JetStreamContext) -> AsyncIterator[Held]:
    """Hold the rebuild lease while inside (Busy if another rebuild holds it).

    The lease is a `reactor.leases.Lease` in the `leases` bucket, which the server
    forgets LEASE_TTL seconds after its last renewal: a killed rebuild's lease ends
    by the server's clock alone, so no holder's clock (behind or ahead) matters."""
    lease = Lease(await js.key_value(LEASES_BUCKET), LEASE_JOB)
    if not await lease.acquire():
        raise Busy(
            "another rebuild is running; if it was killed, its lease ends "
            f"{LEASE_TTL:g} s after its last renewal: run this again then"
        )
    state = Held()
    owner = asyncio.current_task()
    assert owner is not None
    renewing = asyncio.create_task(_renew(lease, state, owner))
    try:
        yield state
    finally:
        renewing.cancel()
        with contextlib.suppress(asyncio.CancelledError, nats.errors.Error):
            await renewing
        if not state.lost:  # not another's to delete
            with contextlib.suppress(nats.errors.Error):
                await lease.release()


async def _renew(lease: Lease, state: Held, owner: asyncio.Task[Any]) -> None:
    while True:
        await asyncio.sleep(RENEW_EVERY)
        try:
            renewed = await lease.renew()
        except nats.errors.Error as exc:  # tried again at the next beat
            log.warning("rebuild: the lease was not renewed: %r", exc)
            continue
        if not renewed:  # paused past LEASE_TTL: it ended, and may be another's
            state.lost = True
            owner.cancel()
            return


async def missing_buckets(js: JetStreamContext, registry: Registry, version: int) -> list[str]:
    """The buckets of views version `version` that do not exist (all, if it is not >= 1)."""
    names = [view_bucket(view, version) for view in [*registry.buckets, VIEW_PROGRESS]]
    if version < 1:
        return names
    missing = []
    for name in names:
        try:
            await js.key_value(name)
        except NotFoundError:
            missing.append(name)
    return missing


async def drop_version(js: JetStreamContext, registry: Registry, version: int) -> bool:
    """Delete the buckets of views version `version`; whether there were any."""
    dropped = False
    for view in [*registry.buckets, VIEW_PROGRESS]:
        with contextlib.suppress(NotFoundError):
            await js.delete_key_value(view_bucket(view, version))
            dropped = True
    return dropped


async def rebuild(
    nc: Client,
    registry: Registry,
    grace: float = 2.0,
    on_switch: Callable[[int], None] = lambda version: None,
    held: Callable[[], bool] = lambda: True,
) -> tuple[Fold, list[Refold], list[str]]:
    """Rebuild into the next version and switch to it; the folds and the differences.
    `on_switch` is told the version as soon as it is live (what comes after may fail);
    `held`: whether this rebuild still holds its lease (the pointer is another's if not)."""
    js = nc.jetstream()
    pointer = await read_whole_pointer(js)
    current = pointer.version
    target = current + 1
    if pointer.building is not None:  # a rebuild killed while building: stop writing to it
        await write_pointer(js, current)
        await asyncio.sleep(grace)
    if await drop_version(js, registry, target):  # what a rollback or a killed rebuild left
        print(f"rebuild: emptying version {target}, left from before", flush=True)
    await create_version(js, registry, target)
    fold, refolds, found = await fold_and_switch(
        nc, registry, current, target, grace, on_switch, held
    )
    if current > 2:
        await drop_version(js, registry, current - 1)  # keep the previous version (never 1)
    return fold, refolds, found


async def fold_and_switch(
    nc: Client,
    registry: Registry,
    current: int,
    target: int,
    grace: float,
    on_switch: Callable[[int], None],
    held: Callable[[], bool],
) -> tuple[Fold, list[Refold], list[str]]:
    """Fold EVENTS into `target`'s buckets (inline views written into them by the
    reactors too, meanwhile), switch every process to it, fold what came meanwhile:
    a rebuild into new buckets, or (`--activate`) a version kept from before, brought
    up to date; the folds and how `target` differs from `current`."""
    js = nc.jetstream()
    buckets = ViewBuckets(js, target)
    fold = Fold(js, registry, buckets, list(registry.views.values()))
    refolds = [Refold(a, registry, nc, buckets) for a in registry.aggregators.values()]
    switched = False
    switched_at = 0
    await write_pointer(js, current, building=target)  # inline views go into it too...
    try:
        await asyncio.sleep(grace)  # ... in every reactor, well within this
        for _ in range(2):  # up to the end, switch, then what came meanwhile
            end = await fold.until_caught_up()
            for refold in refolds:
                await refold.until(end)
            if not switched:
                if not held():
                    raise Busy("another rebuild took the lease over: this one stops")
                await write_pointer(js, target)
                switched, switched_at = True, end
                on_switch(target)
                await asyncio.sleep(grace)  # every process sees the move well within this
    except FoldFailed as exc:
        exc.live = target if switched else current
        raise
    finally:
        if not switched and held():  # stopped before its switch: the version in use alone
            with contextlib.suppress(Exception):
                await write_pointer(js, current)
        await fold.close()
    old = ViewBuckets(js, current)
    found = await differences(old, buckets, fold.views, switched_at)
    found += await differences(old, buckets, registry.aggregators.values(), switched_at)
    return fold, refolds, found


async def run(args: argparse.Namespace) -> int:
    registry = default_registry()
    async with nats_client("rebuild") as nc:
        js = nc.jetstream()
        if args.activate is not None:
            missing = await missing_buckets(js, registry, args.activate)
            if missing:  # every process follows the pointer: to buckets it cannot use
                print(
                    f"rebuild: version {args.activate} cannot be made active: "
                    f"{len(missing)} of its buckets do not exist ({', '.join(missing[:3])}...)",
                    file=sys.stderr,
                )
                return 1
        lease: Held | None = None
        try:
            async with one_at_a_time(js) as lease:
                if args.activate is not None and args.activate == await read_pointer(js):
                    print(f"rebuild: version {args.activate} is the one in use already")
                    return 0
                fold, refolds, found = await _rebuild_saying_so(
                    nc, registry, args.grace, lease, args.activate
                )
        except Busy as exc:
            print(f"rebuild: refused: {exc}", file=sys.stderr)
            return 1
        except FoldFailed as exc:
            print(f"rebuild: stopped: {exc}; version {exc.live} is live", file=sys.stderr)
            return 1
        except asyncio.CancelledError:
            if lease is None or not lease.lost:
                raise
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()  # the lease's cancel, handled here
            print(
                f"rebuild: stopped: paused for over {LEASE_TTL:g} s, its lease was taken "
                "over by another rebuild, which goes on",
                file=sys.stderr,
            )
            return 1
        applied = [(v.name, fold.counts[v.name]) for v in fold.views]
        applied += [(r.aggregator.name, r.applied) for r in refolds]
        counts = ", ".join(f"{name} {n}" for name, n in applied) or "no views"
        print(f"rebuild: read EVENTS up to {fold.position} (events applied per view: {counts})")
        if args.activate is not None:  # it differs from the version left: that is the point
            print(
                f"rebuild: version {args.activate} differs from the one left in {len(found)} places"
            )
            return 0
        if found:
            print(f"rebuild: the rebuilt views differ from the old ones in {len(found)} places:")
            for line in found[:50]:
                print(f"  {line}")
            return 1
        print("rebuild: the rebuilt views equal the old ones")
        return 0


async def _rebuild_saying_so(
    nc: Client, registry: Registry, grace: float, lease: Held, activate: int | None
) -> tuple[Fold, list[Refold], list[str]]:
    current = await read_pointer(nc.jetstream())

    def switched(version: int) -> None:  # said at once: a failure after it leaves it live
        print(f"rebuild: version {version} is live", flush=True)

    def held() -> bool:
        return not lease.lost

    if activate is not None:
        print(f"rebuild: version {current} is live; bringing version {activate} up to date")
        return await fold_and_switch(nc, registry, current, activate, grace, switched, held)
    print(f"rebuild: version {current} is live; building version {current + 1} from EVENTS")
    return await rebuild(nc, registry, grace=grace, on_switch=switched, held=held)


def _at_least(least: float, kind: Callable[[str], float]) -> Callable[[str], float]:
    def parse(text: str) -> float:
        value = kind(text)
        if value < least:
            raise argparse.ArgumentTypeError(f"{text}: at least {least:g}")
        return value

    return parse


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m reactor.rebuild",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--grace",
        type=_at_least(0, float),
        default=2.0,
        help="seconds every process gets to see a move of the pointer: before the fold"
        " and after the switch (default 2)",
    )
    parser.add_argument(
        "--activate",
        type=_at_least(1, int),
        metavar="N",
        help="make version N, kept from before, live again, brought up to date first"
        " (to undo a rebuild)",
    )
    return run_tool("rebuild", run(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
