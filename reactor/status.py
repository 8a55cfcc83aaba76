"""`python -m reactor.status` (`task status`): is the reactor keeping up?

Prints the durable consumer's lag and redeliveries, the streams' sizes and the
dead letters. Healthy: `pending` near 0 (it only grows while reactors are
down or slower than the arrival rate), `redelivered` small and not growing
(transient failures), `dead letters` 0, `dropped` 0 (messages given up on
that not even DEADLETTERS or NOTICES would take: each is listed with its
sequence) and `waiting pulls` at least one per running reactor (an idle
reactor keeps a pull request open). Then, per async view, policy and aggregator (its
slowest partition), how far it has read EVENTS and its lag behind the
stream's end, and each that cannot get past an event (`FAILING`): since when,
how often tried, and the error (the traceback is in that reactor's log).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Sequence

from nats.js import JetStreamContext, api
from nats.js.errors import KeyNotFoundError, NotFoundError

from contracts.failing import failing
from contracts.lag import measure
from contracts.lookups import bucket_keys
from contracts.registry import Registry
from contracts.topology import (
    COMMANDS_STREAM,
    DEADLETTERS_STREAM,
    DROPPED_BUCKET,
    EVENTS_STREAM,
    NOTICES_STREAM,
    REACTOR_CONSUMER,
    RUNNER_PROGRESS_BUCKET,
)
from contracts.views import ViewBuckets, progress_decoder, read_pointer
from domains import registry as default_registry
from reactor.cli import nats_client, run_tool
from reactor.deadletters import dropped_decoder
from reactor.dlq import dead_letters
from reactor.handling import utcnow
from reactor.mailer import consumer_name


async def report(js: JetStreamContext, registry: Registry | None = None) -> list[str]:
    lines = []
    for name in (COMMANDS_STREAM, EVENTS_STREAM, NOTICES_STREAM, DEADLETTERS_STREAM):
        try:
            info = await js.stream_info(name)
            state = info.state
            lines.append(
                f"{name:<12} messages={state.messages:<8} last_seq={state.last_seq}"
                + placement(info)
            )
        except NotFoundError:
            lines.append(f"{name:<12} missing (start the reactor or the API to create it)")
    try:
        info = await js.consumer_info(COMMANDS_STREAM, REACTOR_CONSUMER)
    except NotFoundError:
        lines.append(f"consumer {REACTOR_CONSUMER!r} missing: no reactor has started yet")
        return lines
    lines += [
        f"consumer {REACTOR_CONSUMER!r}",
        f"  pending      {info.num_pending}  (accepted commands not yet delivered: the lag)",
        f"  in flight    {info.num_ack_pending}  (delivered, not yet acknowledged)",
        f"  redelivered  {info.num_redelivered}  (in flight after a failed or lost attempt)",
        f"  waiting pulls {info.num_waiting}  (open pull requests: about one per idle reactor)",
        f"  acked up to  {info.ack_floor.stream_seq if info.ack_floor else 0}"
        f" of {info.delivered.stream_seq if info.delivered else 0} delivered",
    ]
    registry = registry or default_registry()
    lag = await measure(js, registry, utcnow())
    lines += [
        "  lag by domain (after the ack floor: waiting or in flight): "
        + ", ".join(f"{name} {count}" for name, count in lag.by_domain.items())
    ]
    lines += await dropped_report(js)
    return lines + await jobs_report(js, registry) + await mailer_report(js, registry)


def placement(info: api.StreamInfo) -> str:
    """Where a replicated stream lives: '  R3 leader n2' and any replica catching up."""
    replicas = info.config.num_replicas or 1
    if replicas == 1 or info.cluster is None:
        return ""
    behind = [peer.name or "?" for peer in info.cluster.replicas or [] if not peer.current]
    leader = info.cluster.leader or "none (electing one)"
    lagging = f", catching up: {', '.join(behind)}" if behind else ""
    return f"  R{replicas} leader {leader}{lagging}"


async def dropped_report(js: JetStreamContext) -> list[str]:
    """Messages no longer redelivered that reached neither DEADLETTERS nor NOTICES."""
    try:
        kv = await js.key_value(DROPPED_BUCKET)
        keys = await bucket_keys(js, DROPPED_BUCKET)
    except NotFoundError:
        return []
    lines = [f"  dropped      {len(keys)}  (not even dead-lettered; each stays in its stream)"]
    # Keyed <stream>.<sequence>: the last ten dropped, by sequence.
    for key in sorted(keys, key=lambda k: int(k.rsplit(".", 1)[1]))[-10:]:
        entry = await kv.get(key)
        gone = dropped_decoder.decode(entry.value or b"")
        lines.append(
            f"    {gone.stream} seq {gone.seq}  {gone.subject}  {gone.reason}: {gone.error[:80]}"
        )
    return lines


async def mailer_report(js: JetStreamContext, registry: Registry) -> list[str]:
    """Each mailbox: emails waiting to be sent, being retried, and given up on."""
    lines = []
    given_up: Counter[str] = Counter()
    async for letter in dead_letters(js):
        headers = letter.headers or {}
        if headers.get("Dlq-Reason") == "email-failed":
            given_up[headers.get("Dlq-Subject", "").split(".")[1]] += 1  # ev.<aggregate>.<id>
    for box in registry.mailboxes:
        try:
            info = await js.consumer_info(EVENTS_STREAM, consumer_name(box))
        except NotFoundError:
            lines.append(f"mailer {consumer_name(box)!r} missing: no reactor has started yet")
            continue
        lines += [
            f"mailer {consumer_name(box)!r}",
            f"  to read      {info.num_pending}  (events of {box.aggregate}s not yet looked at)",
            f"  sending      {info.num_ack_pending}  (being sent, or waiting to retry: "
            "the SMTP server may be down)",
            f"  given up     {given_up[box.aggregate]}  (dead-lettered, never sent: task dlq)",
        ]
    return lines


async def jobs_report(js: JetStreamContext, registry: Registry) -> list[str]:
    """Where each async view and policy has read EVENTS up to, and how far behind it is."""
    try:
        end = (await js.stream_info(EVENTS_STREAM)).state.last_seq
        progress = await js.key_value(RUNNER_PROGRESS_BUCKET)
    except NotFoundError:
        return ["views: not created yet (start the reactor or the API)"]
    version = await read_pointer(js)
    views = ViewBuckets(js, version)
    lines = [f"views version {version}; EVENTS last_seq={end}"]
    for view in registry.async_views():
        at = await views.progress(view.name)
        lines.append(f"  view {view.name:<24} at {at:<8} behind {end - at}")
    for name in registry.policies:
        try:
            entry = await progress.get(f"policy.{name}")
            position = progress_decoder.decode(entry.value or b"").position
        except KeyNotFoundError:
            position = 0
        lines.append(f"  policy {name:<22} at {position:<8} behind {end - position}")
    for name in registry.aggregators:
        positions = await views.partitions(name)
        at = min(positions)
        lines.append(
            f"  aggregator {name:<18} at {at:<8} behind {end - at}"
            f"  (partitions: {', '.join(str(p) for p in positions)})"
        )
    for stuck in await failing(js):
        lines.append(
            f"  FAILING {stuck.job}: stuck after event {stuck.position} since"
            f" {stuck.since:%Y-%m-%d %H:%M:%S}Z, {stuck.attempts} attempts (the last at"
            f" {stuck.at:%H:%M:%S}Z, reactor {stuck.reactor[:12]}): {stuck.error}"
        )
    return lines


async def run() -> int:
    async with nats_client("status") as nc:
        print("\n".join(await report(nc.jetstream())))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argparse.ArgumentParser(prog="python -m reactor.status", description=__doc__).parse_args(argv)
    return run_tool("status", run())


if __name__ == "__main__":
    sys.exit(main())
