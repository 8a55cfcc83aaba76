"""Where the API and the reactor meet: subjects, streams and KV buckets.

COMMANDS   stream  cmd.<type>.<command_id>          every accepted command, kept
                                                    (projections are rebuilt from it)
NOTICES    stream  notice.<session_id>.<command_id> one outcome per command, kept for
                                                    NOTICE_MAX_AGE; republished once stored
                   -> live.notice.<session>.<cmd>   to the API processes' relays
locations       KV <location_id> -> Location        the read model
location_names  KV <hash of folded name> -> id      uniqueness of names
location_stats  KV <category>.<shard> -> count      locations per category (CAS-updated)
projections     KV active -> {"version": N}         which version of the three buckets above
                                                    is in use: version 1 is the plain names,
                                                    version N > 1 is <name>_v<N> (task rebuild)
DEADLETTERS stream dlq.<original subject>          commands that could not be processed and
                                                    messages that are not commands, kept 30 days
idempotency_keys KV <hash of session + key> -> the first request's command id and
                                                    response; expires after 24 h

Both processes call `ensure_topology` at start-up, so either may come up first.
"""

from __future__ import annotations

import hashlib
import logging
import unicodedata
from typing import Final

from nats.js import JetStreamContext, api
from nats.js.errors import BadRequestError

log = logging.getLogger(__name__)

COMMANDS_STREAM: Final = "COMMANDS"
NOTICES_STREAM: Final = "NOTICES"
LOCATIONS_BUCKET: Final = "locations"
LOCATION_NAMES_BUCKET: Final = "location_names"
LOCATION_STATS_BUCKET: Final = "location_stats"
# The projection buckets, rebuilt together (`task rebuild`) into a new version.
PROJECTION_BUCKETS: Final = (LOCATIONS_BUCKET, LOCATION_NAMES_BUCKET, LOCATION_STATS_BUCKET)
# Which version of them is in use: key `active` -> {"version": N}.
PROJECTIONS_POINTER_BUCKET: Final = "projections"
IDEMPOTENCY_BUCKET: Final = "idempotency_keys"
DEADLETTERS_STREAM: Final = "DEADLETTERS"
DEADLETTER_MAX_AGE: Final = 30 * 24 * 3600.0
IDEMPOTENCY_TTL: Final = 24 * 3600.0
REACTOR_CONSUMER: Final = "reactor"

# A command is published once per accept; this window only has to cover a
# retried publish. A notice may be re-emitted when a command is redelivered
# after its ack was lost: a long window keeps that a no-op.
COMMAND_DUPLICATE_WINDOW: Final = 120.0
NOTICE_DUPLICATE_WINDOW: Final = 3600.0
NOTICE_MAX_AGE: Final = 7 * 24 * 3600.0
MAX_COMMAND_BYTES: Final = 256 * 1024


def command_subject(command_type: str, command_id: str) -> str:
    return f"cmd.{command_type}.{command_id}"


def command_lookup_subject(command_id: str) -> str:
    return f"cmd.*.{command_id}"


def notice_subject(session_id: str, command_id: str) -> str:
    return f"notice.{session_id}.{command_id}"


def notice_lookup_subject(command_id: str) -> str:
    return f"notice.*.{command_id}"


def session_notices_subject(session_id: str) -> str:
    return f"notice.{session_id}.*"


NOTICES_ALL: Final = "notice.>"
# NOTICES republishes each notice here once it is stored, with its sequence
# in the Nats-Sequence header: the subject API processes relay from.
LIVE_NOTICES_ALL: Final = "live.notice.>"


def versioned(bucket: str, version: int) -> str:
    """The name of a projection bucket in a given version (1 is the plain name)."""
    return bucket if version == 1 else f"{bucket}_v{version}"


def projection_bucket_config(bucket: str, version: int) -> api.KeyValueConfig:
    return api.KeyValueConfig(
        bucket=versioned(bucket, version), history=1, storage=api.StorageType.FILE, direct=False
    )


def deadletter_subject(original_subject: str) -> str:
    return f"dlq.{original_subject}"


def name_key(name: str) -> str:
    """KV key of a location name: case- and width-insensitive ("Leeds" == "LEEDS")."""
    folded = unicodedata.normalize("NFKC", name).casefold()
    return hashlib.sha256(folded.encode()).hexdigest()


STREAMS: Final = (
    api.StreamConfig(
        name=COMMANDS_STREAM,
        description="Accepted commands; the source of truth projections are built from",
        subjects=["cmd.>"],
        storage=api.StorageType.FILE,
        retention=api.RetentionPolicy.LIMITS,
        duplicate_window=COMMAND_DUPLICATE_WINDOW,
        max_msg_size=MAX_COMMAND_BYTES,
    ),
    api.StreamConfig(
        name=NOTICES_STREAM,
        description="The outcome of every command, by session",
        subjects=[NOTICES_ALL],
        storage=api.StorageType.FILE,
        retention=api.RetentionPolicy.LIMITS,
        max_age=NOTICE_MAX_AGE,
        max_msgs_per_subject=1,
        duplicate_window=NOTICE_DUPLICATE_WINDOW,
        republish=api.RePublish(src=NOTICES_ALL, dest=LIVE_NOTICES_ALL),
    ),
    api.StreamConfig(
        name=DEADLETTERS_STREAM,
        description="Commands the reactor gave up on, and messages that are not commands",
        subjects=["dlq.>"],
        storage=api.StorageType.FILE,
        retention=api.RetentionPolicy.LIMITS,
        max_age=DEADLETTER_MAX_AGE,
    ),
)

# direct=False: reads go to the stream leader, so a GET after `succeeded` sees
# the write in a cluster too (PITFALLS: direct gets may hit a lagging replica).
BUCKETS: Final = (
    *(projection_bucket_config(bucket, 1) for bucket in PROJECTION_BUCKETS),
    api.KeyValueConfig(
        bucket=PROJECTIONS_POINTER_BUCKET, history=1, storage=api.StorageType.FILE, direct=False
    ),
    api.KeyValueConfig(
        bucket=IDEMPOTENCY_BUCKET,
        history=1,
        ttl=IDEMPOTENCY_TTL,
        storage=api.StorageType.FILE,
        direct=False,
    ),
)


async def ensure_topology(js: JetStreamContext) -> None:
    """Create the streams and buckets, or bring an existing stream's config up to date."""
    for config in STREAMS:
        try:
            await js.add_stream(config)
        except BadRequestError:
            log.info("updating stream %s to the current configuration", config.name)
            await js.update_stream(config)
    for kv in BUCKETS:
        await js.create_key_value(kv)


def stream_names() -> list[str]:
    """Every stream the service needs, KV buckets included."""
    return [s.name for s in STREAMS if s.name] + [f"KV_{b.bucket}" for b in BUCKETS]
