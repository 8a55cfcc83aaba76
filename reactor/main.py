"""`python -m reactor`: wire the reactor to NATS and run it until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import uuid
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from typing import Final

import nats.errors
import uvloop
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from contracts import logs
from contracts.cli import program
from contracts.connection import (
    Interrupted,
    NatsSettings,
    NatsUnavailable,
    close,
    connect,
    while_unavailable,
)
from contracts.failing import Failures
from contracts.registry import Registry, RegistryError
from contracts.topology import (
    EVENTS_STREAM,
    LEASES_BUCKET,
    PARTITIONS,
    RESERVATIONS_BUCKET,
    RUNNER_PROGRESS_BUCKET,
    TOPOLOGY_PATIENCE,
    LegacyStore,
    StoreUnsupported,
    ensure_topology,
    refuse_legacy_store,
)
from contracts.views import ActiveViews
from domains import registry as default_registry
from reactor.aggregators import PartitionJob
from reactor.consumer import Reactor
from reactor.eventstore import EventStore
from reactor.handling import CommandHandler
from reactor.jobs import Job, PolicyJob, Runner, ViewJob, pause
from reactor.lag import sample_lag
from reactor.mailer import Mailer, SmtpSettings
from reactor.members import Members
from reactor.reservations import Reservations
from reactor.views import ViewWriter

JOBS_STOP_GRACE: Final = 3.0  # seconds the jobs get to stop once the reactor has stopped
REPLICAS_EVERY: Final = 10.0  # seconds between reads of EVENTS' replicas (follow_replicas)

log = logging.getLogger("reactor")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=program("reactor"), description=__doc__)
    parser.add_argument(
        "--dev",
        action="store_true",
        default=os.environ.get("REACTOR_DEV", "") in ("1", "true", "yes"),
        help="honour the 'simulate slow reactor' request of commands (env REACTOR_DEV=1)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=int(os.environ.get("REACTOR_CONCURRENCY", "64")),
        help="commands handled at once by this process (env REACTOR_CONCURRENCY)",
    )
    parser.add_argument(
        "--max-attempts",
        type=int,
        default=int(os.environ.get("REACTOR_MAX_ATTEMPTS", "5")),
        help="deliveries before a failing command is dead-lettered (env REACTOR_MAX_ATTEMPTS)",
    )
    parser.add_argument(
        "--ack-wait",
        type=float,
        default=float(os.environ.get("REACTOR_ACK_WAIT", "30")),
        help="seconds before an unacknowledged command is redelivered (env REACTOR_ACK_WAIT)",
    )
    parser.add_argument(
        "--id",
        default=os.environ.get("REACTOR_ID") or None,
        help="a stable name for this reactor, so that once restarted it takes its async views "
        "and policies back at once (env REACTOR_ID; default: a new random one each start)",
    )
    parser.add_argument(
        "--no-jobs",
        dest="jobs",
        action="store_false",
        default=os.environ.get("REACTOR_JOBS", "1") not in ("0", "false", "no"),
        help="only handle commands: leave the async views, policies and aggregators to other "
        "reactors (env REACTOR_JOBS=0)",
    )
    parser.add_argument(
        "--no-access-log",
        dest="access_log",
        action="store_false",
        default=os.environ.get("REACTOR_ACCESS_LOG", "1") not in ("0", "false", "no"),
        help="no line per command handled (env REACTOR_ACCESS_LOG=0)",
    )
    parser.add_argument(
        "--stop-grace",
        type=float,
        default=float(os.environ.get("REACTOR_STOP_GRACE", "10")),
        help="seconds in-flight commands get to finish on SIGTERM (env REACTOR_STOP_GRACE)",
    )
    return parser.parse_args(argv)


async def run(
    args: argparse.Namespace,
    settings: NatsSettings,
    registry: Registry | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Handle commands and run the async views and policies until `stop` (or a signal)."""
    registry = registry or default_registry()
    if stop is None:  # a process of its own: stop on SIGTERM / SIGINT
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)

    active = ActiveViews()
    reactor: Reactor | None = None

    async def on_reconnect() -> None:
        if reactor is not None:
            reactor.wake()  # ask for commands now, not at its loop's next tick
        await active.refresh()  # a move of the view version pointer may have gone by unseen

    async with AsyncExitStack() as stack:
        nc = await connect(settings, name="reactor", reconnected_cb=on_reconnect, stop=stop)
        stack.push_async_callback(close, nc)
        js = nc.jetstream()
        await refuse_legacy_store(js, registry.legacy_buckets())

        async def prepare() -> None:
            await ensure_topology(
                js,
                registry.buckets,
                events_max_bytes=settings.events_max_bytes,
                duplicate_window=settings.duplicate_window,
                replicas=settings.replicas,
            )

        await prepare()  # before the buckets are opened
        await active.start(nc)
        stack.push_async_callback(active.stop)
        # Read from the stream, not the setting: a store made R3 stays R3.
        events = await while_unavailable(
            lambda: js.stream_info(EVENTS_STREAM), within=TOPOLOGY_PATIENCE, what="EVENTS"
        )
        replicas = events.config.num_replicas or 1
        store = EventStore(nc, registry, replicated=replicas > 1)
        handler = CommandHandler(
            registry,
            store,
            Reservations(await js.key_value(RESERVATIONS_BUCKET)),
            lambda: active.current,
            building=lambda: active.building,
        )
        reactor = Reactor(
            js,
            handler,
            prepare=prepare,
            dev=args.dev,
            max_in_flight=args.concurrency,
            max_attempts=args.max_attempts,
            ack_wait=args.ack_wait,
            stop_grace=args.stop_grace,
            access_log=args.access_log,
        )
        leases = await js.key_value(LEASES_BUCKET)
        progress = await js.key_value(RUNNER_PROGRESS_BUCKET)
        holder = args.id or uuid.uuid4().hex
        members = Members(js, leases, holder)
        runners = job_runners(
            registry, nc, active, leases, progress, holder=holder, members=members
        )
        jobs = [asyncio.create_task(r.run(stop)) for r in runners] if args.jobs else []
        if args.jobs:
            jobs.append(asyncio.create_task(sample_lag(js, registry, progress, stop)))
        if jobs and registry.aggregators:
            jobs.append(asyncio.create_task(members.run(stop)))
        if args.jobs and registry.mailboxes:
            mailer = Mailer(js, registry, handler, SmtpSettings.from_env())
            jobs.append(asyncio.create_task(mailer.run(stop)))
        jobs.append(asyncio.create_task(follow_replicas(js, store, stop)))
        away = asyncio.create_task(_close_if_away(nc, stop, reactor.wake))
        try:
            await reactor.run(stop)
        finally:
            stop.set()
            await _stop_jobs(jobs)
            await away
        if nc.is_connected:  # with the server gone there is nothing to flush to
            log.info("reactor stopping: in-flight work done, flushing")
            await nc.flush(timeout=5)
    log.info("reactor stopped")


async def follow_replicas(
    js: JetStreamContext, store: EventStore, stop: asyncio.Event, every: float = REPLICAS_EVERY
) -> None:
    """Keep `store.replicated` true to EVENTS' replicas, read from the stream every
    `every` seconds: a stream raised to R3 while a reactor runs (another process started
    with a higher NATS_REPLICAS) gets the leader's check within that, not at a restart."""
    while not stop.is_set():
        try:
            info = await js.stream_info(EVENTS_STREAM)
        except (nats.errors.Error, TimeoutError) as exc:  # NATS away: keep what it was
            log.debug("EVENTS' replicas not read: %r", exc)
        except Exception:  # a surprise: keep what it was, and keep following
            log.exception("EVENTS' replicas not read")
        else:
            replicated = (info.config.num_replicas or 1) > 1
            if replicated != store.replicated:
                log.info("EVENTS is now kept by %d servers", info.config.num_replicas or 1)
                store.replicated = replicated
        await pause(stop, every)


async def _close_if_away(nc: Client, stop: asyncio.Event, wake: Callable[[], None]) -> None:
    """Stopping with the server gone: close the connection at once, so that each
    stopping step (the last pull request's expiry, a command's or a job's request
    in flight, a lease given up) fails at once rather than waits out its timeout.
    Nothing is lost: what was not acknowledged is redelivered, every job resumes
    from its checkpoint."""
    await stop.wait()
    if not nc.is_connected:
        await close(nc)
        wake()  # the consumer, if it waits on its last pull request


async def _stop_jobs(jobs: list[asyncio.Task[None]]) -> None:
    """Let the jobs finish (checkpoint, give their leases up), within JOBS_STOP_GRACE;
    what is still running after it is cancelled. Every job resumes from its checkpoint."""
    if not jobs:
        return
    _, late = await asyncio.wait(jobs, timeout=JOBS_STOP_GRACE)
    for task in late:
        task.cancel()
    await asyncio.gather(*jobs, return_exceptions=True)


def job_runners(
    registry: Registry,
    nc: Client,
    active: ActiveViews,
    leases: KeyValue,
    progress: KeyValue,
    *,
    holder: str,
    members: Members,
) -> list[Runner]:
    """A runner for each async view, each policy and each aggregator's partition (one
    reactor runs each at a time; of the partitions, each reactor its fair share)."""
    js = nc.jetstream()
    jobs: list[Job] = [
        ViewJob(v, registry, active, ViewWriter(follows=True)) for v in registry.async_views()
    ]
    jobs += [PolicyJob(p, registry, js, progress) for p in registry.policies.values()]
    failures = Failures(progress, holder)
    runners = [Runner(job, js, registry, leases, holder=holder, failures=failures) for job in jobs]
    for aggregator in registry.aggregators.values():
        share = members.share(PARTITIONS)
        runners += [
            Runner(
                PartitionJob(aggregator, p, registry, nc, active),
                js,
                registry,
                leases,
                holder=holder,
                gate=share,
                failures=failures,
            )
            for p in range(PARTITIONS)
        ]
    return runners


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logs.configure()
    try:
        # uvloop, as uvicorn gives the API: a cheaper loop for the reactor's many small awaits.
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(run(args, NatsSettings.from_env(role="reactor")))
    except (NatsUnavailable, LegacyStore, StoreUnsupported, RegistryError) as exc:
        print(f"reactor: {exc}", file=sys.stderr)
        return 1
    except Interrupted:
        return 130
    return 0
