"""Where the processes meet: subjects, streams and KV buckets.

COMMANDS    stream cmd.<type>.<command_id>          every accepted command, kept
EVENTS      stream ev.<aggregate>.<id>              the event store: every decision, kept
                                                    for ever (atomic batches, direct gets)
                   evk.<aggregate>.<key>  ->        keyed events, stored by the server as
                   ev.<aggregate>.<partition>.<key> (subject transform with partition())
NOTICES     stream notice.<session_id>.<command_id> one outcome per command, kept for
                                                    NOTICE_MAX_AGE; republished once stored
                   -> live.notice.<session>.<cmd>   to the API processes' relays
DEADLETTERS stream dlq.<original subject>           commands that could not be processed and
                                                    messages that are not commands, 30 days
view_<name>[_v<N>]     KV <key> -> {position, state}  a view's records (version N > 1
                                                    after `task rebuild`); an aggregator's
                                                    too, with memo.<key>, partition.<p> and
                                                    rank.<p> beside them (atomic batches)
view_progress[_v<N>]   KV <view> -> {position}      how far each async view has folded EVENTS
view_versions          KV active -> {"version": N}  which version of the view buckets is in use
reservations           KV <scope>.<hash> -> id      unique values (a name, an email) and the
                                                    aggregate holding each
runner_progress        KV <runner> -> {position}    how far each policy has read EVENTS
leases                 KV <runner> -> holder        which reactor runs an async view or
                                                    policy, and which `task rebuild` runs
                                                    (expires unless renewed)
idempotency_keys       KV <hash of session + key>   the first request's command id and
                                                    response; expires after 24 h
sessions               KV <hash of session id>      the user a browser session is signed in
                                                    as; expires after 30 days
sign_in_attempts       KV email.<hash>|client.<hash> failed sign-ins in the current window

Every process calls `ensure_topology` at start-up, so any may come up first.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Iterable
from functools import partial
from typing import Final

from nats.js import JetStreamContext, api
from nats.js.errors import APIError, BadRequestError, NotFoundError

from contracts.connection import while_unavailable

log = logging.getLogger(__name__)

COMMANDS_STREAM: Final = "COMMANDS"
EVENTS_STREAM: Final = "EVENTS"
NOTICES_STREAM: Final = "NOTICES"
DEADLETTERS_STREAM: Final = "DEADLETTERS"
VIEW_VERSIONS_BUCKET: Final = "view_versions"
VIEW_PROGRESS: Final = "progress"  # the view name of the progress bucket: view_progress
RESERVATIONS_BUCKET: Final = "reservations"
RUNNER_PROGRESS_BUCKET: Final = "runner_progress"
LEASES_BUCKET: Final = "leases"
IDEMPOTENCY_BUCKET: Final = "idempotency_keys"
SESSIONS_BUCKET: Final = "sessions"
SIGN_IN_ATTEMPTS_BUCKET: Final = "sign_in_attempts"
# Commands the reactor stopped redelivering without a dead letter (DEADLETTERS or
# NOTICES refused it): keyed by the command's COMMANDS sequence, listed by `task status`.
DROPPED_BUCKET: Final = "dropped_commands"
REACTOR_CONSUMER: Final = "reactor"

COMMANDS_ALL: Final = "cmd.>"
EVENTS_ALL: Final = "ev.>"
KEYED_ALL: Final = "evk.>"
# Keyed events are spread over this many partitions by the server, whatever
# their aggregate: `partition()` hashes the key. Fixed for a store's life
# (as a Kafka topic's partition count): the partition of an event is decided
# when it is stored, so changing it would split a key's events over two
# partitions. It bounds how many reactors share one aggregator's work.
PARTITIONS: Final = 8
NOTICES_ALL: Final = "notice.>"
# NOTICES republishes each notice here once it is stored, with its sequence
# in the Nats-Sequence header: the subject API processes relay from.
LIVE_NOTICES_ALL: Final = "live.notice.>"

DEADLETTER_MAX_AGE: Final = 30 * 24 * 3600.0
IDEMPOTENCY_TTL: Final = 24 * 3600.0
SESSION_TTL: Final = 30 * 24 * 3600.0  # as long as the session cookie lives
SIGN_IN_ATTEMPTS_TTL: Final = 24 * 3600.0  # only clears old counts: the window is the API's
LEASE_TTL: Final = 6.0
# How long start-up keeps asking a cluster that does not answer (a leader election).
TOPOLOGY_PATIENCE: Final = 30.0
# A command is published once per accept; this window only has to cover a
# retried publish. An event append is repeated when a command is redelivered:
# within the window the server drops it by its Nats-Msg-Id, after it the
# expected-sequence check does. A notice may be re-emitted when a command is
# redelivered after its ack was lost: a long window keeps that a no-op.
DUPLICATE_WINDOW: Final = 120.0  # COMMANDS and EVENTS (NATS_DUPLICATE_WINDOW)
NOTICE_DUPLICATE_WINDOW: Final = 3600.0
NOTICE_MAX_AGE: Final = 7 * 24 * 3600.0
# A command holds its body re-encoded (a route may accept up to 1 MiB); the
# events of one decision are about as large. nats.conf's max_payload is 2 MB.
MAX_COMMAND_BYTES: Final = 2 * 1024 * 1024
MAX_EVENT_BYTES: Final = 2 * 1024 * 1024

# The previous version's pointer to its view buckets (`<bucket>_v<N>` after a
# rebuild); its domains' buckets are declared by the domains (`LegacyBucket`).
LEGACY_POINTER_BUCKET: Final = "projections"


def command_subject(command_type: str, command_id: str) -> str:
    return f"cmd.{command_type}.{command_id}"


def command_lookup_subject(command_id: str) -> str:
    return f"cmd.*.{command_id}"


def event_subject(aggregate: str, aggregate_id: str) -> str:
    return f"ev.{aggregate}.{aggregate_id}"


def keyed_subject(aggregate: str, key: str) -> str:
    """Where a keyed event is published; the server stores it at its partition's subject."""
    return f"evk.{aggregate}.{key}"


def partition_filter(aggregate: str, partition: int) -> str:
    """The stored subjects of an aggregate's keyed events in one partition."""
    return f"ev.{aggregate}.{partition}.*"


def keyed_filter(aggregate: str) -> str:
    """The stored subjects of all of an aggregate's keyed events (every partition)."""
    return f"ev.{aggregate}.*.*"


# The server's partition() over the key token: FNV-1a of the token, modulo the count.
KEYED_TRANSFORM: Final = api.SubjectTransform(
    src="evk.*.*",
    dest="ev.{{wildcard(1)}}.{{partition(%d,2)}}.{{wildcard(2)}}" % PARTITIONS,  # noqa: UP031
)


def notice_subject(session_id: str, command_id: str) -> str:
    return f"notice.{session_id}.{command_id}"


def notice_lookup_subject(command_id: str) -> str:
    return f"notice.*.{command_id}"


def session_notices_subject(session_id: str) -> str:
    return f"notice.{session_id}.*"


def deadletter_subject(original_subject: str) -> str:
    return f"dlq.{original_subject}"


def view_bucket(view: str, version: int) -> str:
    """The bucket of a view in a version of the views (1 has no suffix)."""
    name = f"view_{view}"
    return name if version == 1 else f"{name}_v{version}"


def view_bucket_config(view: str, version: int, replicas: int = 1) -> api.KeyValueConfig:
    # direct=False: reads go to the stream leader, so a GET after `succeeded`
    # sees the write in a cluster too (direct gets may hit a lagging replica).
    return _plain_bucket(view_bucket(view, version), replicas=replicas)


def view_buckets(views: Iterable[str], version: int, replicas: int = 1) -> list[api.KeyValueConfig]:
    """Every bucket of one version: each view's, and the async views' progress."""
    return [view_bucket_config(v, version, replicas) for v in [*views, VIEW_PROGRESS]]


def events_stream_config(
    max_bytes: int = -1, duplicate_window: float = DUPLICATE_WINDOW, replicas: int = 1
) -> api.StreamConfig:
    return api.StreamConfig(
        name=EVENTS_STREAM,
        description="The event store: every decision, per aggregate, kept for ever",
        subjects=[EVENTS_ALL, KEYED_ALL],
        subject_transform=KEYED_TRANSFORM,
        storage=api.StorageType.FILE,
        retention=api.RetentionPolicy.LIMITS,
        # Full means refuse new events, never drop old ones (see README: archive).
        max_bytes=max_bytes,
        discard=api.DiscardPolicy.NEW,
        duplicate_window=duplicate_window,
        max_msg_size=MAX_EVENT_BYTES,
        deny_delete=True,
        deny_purge=True,
        allow_atomic=True,  # a decision of several events is one batch
        allow_direct=True,  # an aggregate's events in one batched direct get
        num_replicas=replicas,
    )


def streams(
    events_max_bytes: int = -1, duplicate_window: float = DUPLICATE_WINDOW, replicas: int = 1
) -> tuple[api.StreamConfig, ...]:
    """Every stream; `events_max_bytes` limits the event store (-1: no limit),
    `duplicate_window` is how long COMMANDS and EVENTS drop a repeated Nats-Msg-Id,
    and `replicas` how many servers of a cluster keep each (NATS_REPLICAS)."""
    return (
        dataclasses.replace(COMMANDS, duplicate_window=duplicate_window, num_replicas=replicas),
        events_stream_config(events_max_bytes, duplicate_window, replicas),
        dataclasses.replace(NOTICES, num_replicas=replicas),
        dataclasses.replace(DEADLETTERS, num_replicas=replicas),
    )


COMMANDS: Final = api.StreamConfig(
    name=COMMANDS_STREAM,
    description="Accepted commands",
    subjects=[COMMANDS_ALL],
    storage=api.StorageType.FILE,
    retention=api.RetentionPolicy.LIMITS,
    duplicate_window=DUPLICATE_WINDOW,
    max_msg_size=MAX_COMMAND_BYTES,
)
NOTICES: Final = api.StreamConfig(
    name=NOTICES_STREAM,
    description="The outcome of every command, by session",
    subjects=[NOTICES_ALL],
    storage=api.StorageType.FILE,
    retention=api.RetentionPolicy.LIMITS,
    max_age=NOTICE_MAX_AGE,
    max_msgs_per_subject=1,
    duplicate_window=NOTICE_DUPLICATE_WINDOW,
    republish=api.RePublish(src=NOTICES_ALL, dest=LIVE_NOTICES_ALL),
)
DEADLETTERS: Final = api.StreamConfig(
    name=DEADLETTERS_STREAM,
    description="Commands the reactor gave up on, and messages that are not commands",
    subjects=["dlq.>"],
    storage=api.StorageType.FILE,
    retention=api.RetentionPolicy.LIMITS,
    max_age=DEADLETTER_MAX_AGE,
)


def _plain_bucket(name: str, ttl: float | None = None, replicas: int = 1) -> api.KeyValueConfig:
    return api.KeyValueConfig(
        bucket=name,
        history=1,
        ttl=ttl,
        storage=api.StorageType.FILE,
        direct=False,
        replicas=replicas,
    )


# The service's own buckets (beside the views'): name -> time to live.
_BUCKET_TTLS: Final[dict[str, float | None]] = {
    VIEW_VERSIONS_BUCKET: None,
    RESERVATIONS_BUCKET: None,
    RUNNER_PROGRESS_BUCKET: None,
    LEASES_BUCKET: LEASE_TTL,
    IDEMPOTENCY_BUCKET: IDEMPOTENCY_TTL,
    SESSIONS_BUCKET: SESSION_TTL,
    SIGN_IN_ATTEMPTS_BUCKET: SIGN_IN_ATTEMPTS_TTL,
    DROPPED_BUCKET: None,
}


def buckets(replicas: int = 1) -> list[api.KeyValueConfig]:
    """The service's own buckets (views' aside), each kept by `replicas` servers."""
    return [_plain_bucket(name, ttl, replicas) for name, ttl in _BUCKET_TTLS.items()]


class LegacyStore(RuntimeError):
    """The store was written by the previous version: it needs `task migrate`."""


async def legacy_buckets(js: JetStreamContext, names: Iterable[str]) -> list[str]:
    """Which of the previous version's buckets are still in the store."""
    found = []
    for name in [*names, LEGACY_POINTER_BUCKET]:
        try:
            # A cluster still forming (no JetStream leader yet) does not answer.
            await while_unavailable(
                partial(js.stream_info, f"KV_{name}"), within=TOPOLOGY_PATIENCE, what=name
            )
        except NotFoundError:
            continue
        found.append(name)
    return found


async def refuse_legacy_store(js: JetStreamContext, names: Iterable[str]) -> None:
    """Raise LegacyStore (one line saying what to do) if the store needs migrating."""
    found = await legacy_buckets(js, names)
    if found:
        raise LegacyStore(
            f"this NATS store was written by the previous version (buckets {', '.join(found)}, "
            "no event store); run `task migrate` to move it onto EVENTS, then start again"
        )


class StoreUnsupported(RuntimeError):
    """The server cannot keep the store as asked (NATS_REPLICAS above its cluster's size)."""


# nats-server's error codes for replicas it cannot place.
_REPLICAS_ERRORS: Final = {10074, 10005}  # not clustered; insufficient resources / peers
_STREAM_NAME_IN_USE: Final = 10058  # a stream of that name exists with another configuration


def _unsupported(exc: APIError, name: str, replicas: int) -> StoreUnsupported:
    return StoreUnsupported(
        f"NATS cannot keep {name} on {replicas} servers ({exc.description}): set NATS_REPLICAS "
        "to at most the number of servers in its cluster (1 for a single server)"
    )


async def ensure_topology(
    js: JetStreamContext,
    views: Iterable[str] = (),
    *,
    events_max_bytes: int = -1,
    duplicate_window: float = DUPLICATE_WINDOW,
    replicas: int = 1,
    update: bool = True,
) -> None:
    """Create the streams and buckets, or update a stream's config; and the buckets of
    `views` in the version the views pointer names (1 for a new store), and in the
    one a rebuild is building, if one is: a view added to the registry after a
    rebuild has its buckets in the live version, not only in version 1.

    `replicas` (NATS_REPLICAS) is how many servers keep each stream and bucket:
    an existing one kept by fewer is raised to it, one kept by more is left so
    (lowering is the operator's decision, not a start-up's).

    `update=False` (the API, whose NATS user may create a stream but not change
    one): a stream whose configuration differs is left as it is, for the
    reactor to update.
    """
    for config in streams(events_max_bytes, duplicate_window, replicas):
        await while_unavailable(
            partial(_ensure_stream, js, config, update=update),
            within=TOPOLOGY_PATIENCE,
            what=f"stream {config.name}",
        )
    for kv in buckets(replicas):
        await while_unavailable(
            partial(_ensure_bucket, js, kv, update=update),
            within=TOPOLOGY_PATIENCE,
            what=f"bucket {kv.bucket}",
        )
    from contracts.views import read_whole_pointer  # it reads what this module names

    pointer = await while_unavailable(
        partial(read_whole_pointer, js), within=TOPOLOGY_PATIENCE, what="the views pointer"
    )
    for version in sorted({pointer.version, pointer.building or pointer.version}):
        await create_view_buckets(js, views, version, replicas=replicas, update=update)


async def _ensure_stream(js: JetStreamContext, config: api.StreamConfig, *, update: bool) -> None:
    assert config.name is not None
    try:
        await js.add_stream(config)
    except APIError as exc:
        if exc.err_code in _REPLICAS_ERRORS:
            raise _unsupported(exc, config.name, config.num_replicas or 1) from exc
        if not isinstance(exc, BadRequestError):
            raise
        if not update:
            log.info("stream %s differs from this version's; the reactor updates it", config.name)
            return
        kept_by = (await js.stream_info(config.name)).config.num_replicas or 1
        config = dataclasses.replace(config, num_replicas=max(config.num_replicas or 1, kept_by))
        log.info("updating stream %s to the current configuration", config.name)
        await js.update_stream(config)


async def _ensure_bucket(
    js: JetStreamContext, kv: api.KeyValueConfig, *, update: bool, atomic: bool = False
) -> None:
    """Make a bucket, or raise an existing one's replicas (and let it take atomic batches).

    Looked at first: nats-py's create would refuse a bucket that exists with
    another configuration (err 10058). Without `update` (the API) a bucket is
    made and any update left to the reactor.
    """
    stream = f"KV_{kv.bucket}"
    try:
        info = await js.stream_info(stream)
    except NotFoundError:
        try:
            await js.create_key_value(kv)
        except APIError as exc:
            if exc.err_code in _REPLICAS_ERRORS:
                raise _unsupported(exc, stream, kv.replicas) from exc
            if exc.err_code != _STREAM_NAME_IN_USE:
                raise
            # Another process made it meanwhile (and may have updated it already).
        info = await js.stream_info(stream)
    config = info.config
    changed = False
    if atomic and not config.allow_atomic:
        config.allow_atomic = True
        changed = True
    if (config.num_replicas or 1) < kv.replicas:
        config.num_replicas = kv.replicas
        changed = True
    if changed and update:
        # A cluster answers an update sent while the stream it made has no
        # leader yet (another process just made it) with silence: wait for one
        # (a while: the update is then tried anyway, and asked again if unanswered).
        for _ in range(100):
            if info.cluster is None or info.cluster.leader:
                break
            await asyncio.sleep(0.05)
            info = await js.stream_info(stream)
        log.debug(
            "updating bucket %s (atomic batches, %d replicas)", kv.bucket, config.num_replicas
        )
        await js.update_stream(config)


async def create_view_buckets(
    js: JetStreamContext,
    views: Iterable[str],
    version: int,
    *,
    replicas: int = 1,
    update: bool = True,
) -> None:
    """One version's view buckets (and its progress bucket), taking atomic batches.

    An aggregator writes a partition's records and its position in one atomic
    batch; nats-py's KeyValueConfig cannot ask for that, so the bucket's
    stream is updated once made (a no-op after the first time). Without
    `update` (the API) a bucket is made and the update left to the reactor,
    which does it before any aggregator writes.
    """
    for kv in view_buckets(views, version, replicas):
        await while_unavailable(
            partial(_ensure_bucket, js, kv, update=update, atomic=True),
            within=TOPOLOGY_PATIENCE,
            what=f"bucket {kv.bucket}",
        )


def stream_names(views: Iterable[str] = ()) -> list[str]:
    """Every stream the service needs, KV buckets (of views version 1) included."""
    kept = [*buckets(), *view_buckets(views, 1)]
    return [s.name for s in streams() if s.name] + [f"KV_{b.bucket}" for b in kept]
