"""What a domain declares: plain data and pure functions, no I/O.

A domain package under `domains/` builds one `Domain` from these parts; the
API and the reactor derive everything else from it (routes, decoders,
subjects, buckets, consumers, the OpenAPI document, the page's navigation):

- `CommandSpec`: a command schema (a msgspec Struct), the aggregate it acts
  on, and its route: `POST /api/<collection>` makes a new aggregate,
  `POST /api/<collection>/{id}/<action>` acts on an existing one, no route
  means only a policy sends it. Who may send it (`access`, `owner`), and,
  when the client sends something else than the command (a password to
  hash, a user to add), the `form` it sends and the pure `intake` that turns
  it into the command.
- `Event`: an event schema with its version and upcasters from older versions.
- `Aggregate`: `initial`, `decide(state, command) -> events | Rejection`,
  `evolve(state, event, meta) -> state`.
- `View`: a read model keyed by `key(event, meta)`, folded by a pure
  `apply(record, event, meta) -> record | None`; inline (written before the
  notice) or async (folded from the event stream later).
- `Policy`: `react(event, meta) -> [Issue]`: the commands an event leads to.
- `Mailbox`: emails the domain asks for, which the reactor's mailer sends
  (each at most once) and records the fate of through the domain's commands.
- `SignIn`: the credentials view browser sessions sign in against (one
  domain at most).
- `Aggregator`: per-key records folded from *keyed* events (an `Event` with a
  `key`), too many for one process: the server partitions them by key and
  the reactors share the partitions.
- Reads: `ListRead`, `GetRead`, `SummaryRead`; and a web page.
"""

from __future__ import annotations

import re
import unicodedata
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Final, Literal, NamedTuple

import msgspec

from contracts.notices import FieldError, Problem

# A reservation's scope (`Unique.scope`): the first token of its key.
SCOPE: Final = re.compile(r"^[a-z][a-z0-9-]{0,31}$")


def folded(value: str) -> str:
    """A value as uniqueness compares it: NFKC, case-folded, trimmed ("Leeds" = "LEEDS ")."""
    return unicodedata.normalize("NFKC", value).casefold().strip()


# Format characters that text needs: the joiners (emoji sequences such as 👩‍💻, and
# scripts such as Persian and Hindi); and tags, in a subdivision flag only (🏴 then
# tags up to the cancel tag: elsewhere they are invisible text).
_JOINERS: Final = frozenset("\u200c\u200d")
_FLAG, _TAGS, _CANCEL_TAG = "\U0001f3f4", range(0xE0020, 0xE0080), "\U000e007f"


def has_control_characters(text: str) -> bool:
    """Whether `text` holds what no name or title should: control characters (line
    breaks included), surrogates, private-use or unassigned code points, or format
    characters (bidirectional overrides, say) other than those text needs."""
    in_flag = False
    for c in text:
        if ord(c) in _TAGS:
            if not in_flag:
                return True
            in_flag = c != _CANCEL_TAG
            continue
        in_flag = c == _FLAG
        if unicodedata.category(c).startswith("C") and c not in _JOINERS:
            return True
    return False


def some_text(max_length: int) -> msgspec.Meta:
    """A text field's schema: 1 to `max_length` characters, not only spaces (a field the
    API does not trim, inside a list, is refused by the pattern; the error says so)."""
    return msgspec.Meta(
        min_length=1, max_length=max_length, pattern=r"\S", description="some text, not just spaces"
    )


def stable_shard(key: str, shards: int) -> int:
    """`key`'s shard of `shards`: the same in every process and run (crc32, not hash())."""
    return zlib.crc32(key.encode()) % shards


def one_line(*fields: str) -> Check:
    """A `CommandSpec.check`: each of `fields` (names of the body's text fields) is plain
    one-line text, as `has_control_characters` says (a name shown in a notice, a header,
    an email's subject; a zero-width space would make a second "Leeds" that looks the same)."""

    def check(body: Any, now: datetime) -> Sequence[FieldError]:
        return [
            FieldError(f"$.{name}", "must not contain control characters")
            for name in fields
            if has_control_characters(getattr(body, name))
        ]

    return check


# Who may send a command over HTTP. "anyone": any browser session; "user": a
# session signed in as a user (401 otherwise).
Access = Literal["anyone", "user"]
Struct = msgspec.Struct
Schema = type[msgspec.Struct]  # (inside CommandSpec, `type` is a field's name)


class Rejection(msgspec.Struct, frozen=True):
    """A business rule refused the command: its notice is `failed` with this problem.

    `record`: events that record the refusal itself (a `VideoNameRejected`),
    appended like any decision; the command still fails. Without them a
    refusal appends nothing.
    """

    status: int
    title: str
    detail: str
    slug: str | None = None
    errors: list[FieldError] | None = None
    record: tuple[Any, ...] = ()

    def problem(self) -> Problem:
        return Problem(
            type=f"/problems/{self.slug or self.title.lower().replace(' ', '-')}",
            title=self.title,
            status=self.status,
            detail=self.detail,
            errors=self.errors,
        )


class EventMeta(msgspec.Struct, frozen=True):
    """Where and when an event was recorded, and what caused it."""

    aggregate: str
    aggregate_id: str
    seq: int  # its sequence in the EVENTS stream: its position
    at: datetime  # when it was decided (UTC)
    type: str
    command_id: str  # the command that decided it (causation)
    correlation_id: str
    session_id: str
    traceparent: str = ""  # W3C trace context of the decision (contracts.tracing)


@dataclass(frozen=True)
class Event:
    """An event schema. `upcasters[v]` turns version v's fields into version v+1's.

    A keyed event (`key` given) is not stored on its aggregate's subject but
    on its key's, `ev.<aggregate>.<partition>.<key>`, where the server's
    subject transform puts the partition: so one decision can spread over
    many keys (a batch of messages over the channels they name), and an
    `Aggregator` folds each partition apart. A decision with keyed events
    also holds at least one event of its own aggregate: the first, which
    guards the whole batch against being appended twice.
    """

    type: type[Struct]
    version: int = 1
    upcasters: Mapping[int, Callable[[dict[str, Any]], dict[str, Any]]] = field(
        default_factory=dict
    )
    key: Callable[[Any], str] | None = None  # a subject token and a KV key: [0-9A-Za-z_-]

    @property
    def name(self) -> str:
        return self.type.__name__


@dataclass(frozen=True)
class Unique:
    """A value that only one aggregate may hold (a name, an email).

    The machinery reserves the value, `folded`, for the
    aggregate before it decides; a value held by another aggregate is
    `rejection(command)`. `scope` (`SCOPE`: lower case, digits and dashes) names
    the values that may not repeat: a location's name, a user's email.
    """

    scope: str
    value: Callable[[Any], str]
    rejection: Callable[[Any], Rejection]


@dataclass(frozen=True)
class Exists:
    """A record the command names that must exist: checked by the API before it publishes.

    `key(command)` is the record's key in the (inline) view `view`; if there is
    none, the command is refused with 422, `msg` at the payload's `field`.
    """

    view: str
    key: Callable[[Any], str]
    field: str
    msg: str = "does not exist"


class Actor(NamedTuple):
    """Who sends a command over HTTP: the signed-in user's id, or None (anonymous)."""

    user_id: str | None


@dataclass(frozen=True)
class Owner:
    """Only the user a record names may act on it: checked by the API before it publishes.

    The resource's record in the (inline) view `view` must have `field` equal
    to the signed-in user's id: 403 otherwise, 404 if there is no record.
    """

    view: str
    field: str = "owner_id"


# A check of a whole payload beyond its schema, given the time it is received: the
# errors, each at its field. Pure: the API runs it before it publishes anything.
Check = Callable[[Any, datetime], Sequence[FieldError]]


@dataclass(frozen=True)
class CommandSpec:
    type: type[Struct]
    aggregate: str
    collection: str | None = None  # None: sent by policies only
    action: str | None = None  # None with a collection: it makes a new aggregate
    access: Access = "anyone"
    owner: Owner | None = None
    unique: Unique | None = None
    requires: tuple[Exists, ...] = ()
    resource: str | None = None  # the view whose record of the aggregate is the resource
    summary: str = ""
    # What the client sends, when it is not the command itself, and the pure
    # function that makes the command of it and the sender (a user id to add).
    form: Schema | None = None
    intake: Callable[[Any, Actor], Struct] | None = None
    # Fields of the form the API replaces with their hash (argon2) before
    # `intake`: a secret never reaches a stream, a bucket, a log or a notice.
    secrets: tuple[str, ...] = ()
    # On the sender's own aggregate: POST /api/<collection>/me/<action>, where
    # the aggregate is the signed-in user's (access "user").
    on_self: bool = False
    max_body: int | None = None  # bytes its route accepts (None: the API's MAX_BODY_BYTES)
    check: Check | None = None

    @property
    def name(self) -> str:
        return self.type.__name__

    @property
    def body(self) -> Schema:
        """The schema of the request body."""
        return self.form or self.type

    @property
    def creates(self) -> bool:
        return self.collection is not None and self.action is None

    @property
    def path(self) -> str | None:
        if self.collection is None:
            return None
        if self.action is None:
            return f"/api/{self.collection}"
        if self.on_self:
            return f"/api/{self.collection}/me/{self.action}"
        return f"/api/{self.collection}/{{id}}/{self.action}"


@dataclass(frozen=True)
class Aggregate:
    name: str  # the subject token: events go to ev.<name>.<id>
    initial: Any
    decide: Callable[[Any, Any], Sequence[Struct] | Rejection]
    evolve: Callable[[Any, Any, EventMeta], Any]


class Link(NamedTuple):
    href: str
    label: str


def by_aggregate(event: Any, meta: EventMeta) -> str:
    return meta.aggregate_id


@dataclass(frozen=True)
class View:
    """A read model. Each record carries the position of the last event applied to it.

    An inline view is written before the command's notice, so a client that
    hears `succeeded` reads it; each of its keys must belong to one aggregate.
    An async view is folded from EVENTS in order by a runner of its own; a
    read with `?min_position=N` waits until it has got that far. `key` may
    answer None: the event changes no record of this view.

    A computed view (`compute`, no `apply`) is not folded: each time an event
    changes one of its `inputs` (other views), the record of `key` is made
    again by `compute(**inputs)` from all of that key's input records: for an
    input `one`, the record at the key itself; for `many`, every record whose
    key starts with "<key>." (so such an input view keys its records
    "<key>.<something>"). Its `events` must include every input view's: its
    runner brings the inputs up to date itself before computing. A record
    made from older inputs never replaces one made from newer ones. If the
    state has a `position` field, it is set to the last event its inputs
    reflect.
    """

    name: str
    state: type[Struct]
    events: tuple[type[Struct], ...]
    apply: Callable[[Any, Any, EventMeta], Any] | None = None
    key: Callable[[Any, EventMeta], str | None] = by_aggregate
    inline: bool = False
    followable: bool = False
    page: Callable[[Any], Link] | None = None  # where a browser shows a record
    inputs: tuple[Input, ...] = ()
    compute: Callable[..., Any] | None = None


@dataclass(frozen=True)
class Input:
    """An input of a computed view: `compute` gets it as the argument `name`."""

    name: str
    view: View
    many: bool = False  # every record under "<key>.", as a list (else the one record, or None)


# The records one event may touch (`Aggregator.split`): a partition's write is one
# atomic batch (the server takes 1,000 messages), a record and its memo each.
MAX_PARTS: Final = 400


@dataclass(frozen=True)
class Aggregator:
    """Per-key records folded from keyed events, partitioned over the reactors.

    `apply(record | None, memo | None, part, meta) -> (record, memo)` folds
    an event's part for one record key into that key's record (what reads
    see: a `GetRead` or `ListRead` names the aggregator like a view, and it is
    followable) and its memo (what only the fold needs, e.g. the users
    already counted; written only when it changes). The machinery owns both
    objects between calls, so `apply` may change them in place and return
    them. `split(event) -> {record key: part}` says which records an event
    touches (records may be finer than the events' keys: an event keyed by a
    group of keys); without it the part is the whole event, for the record
    of the event's own key.

    The keys' events reach the aggregator partitioned by the server (a
    subject transform with `partition()`); each partition is folded by one
    reactor at a time, which writes the records it changed, their memos, and
    the partition's position in one atomic write: a crash or a second writer
    never applies an event twice or loses one. `rank(record)` orders the
    list read, highest first (else by key).
    """

    name: str
    state: type[Struct]
    events: tuple[type[Struct], ...]
    apply: Callable[[Any, Any, Any, EventMeta], tuple[Any, Any]]
    memo: type[Struct] | None = None
    rank: Callable[[Any], int] | None = None
    split: Callable[[Any], Mapping[str, Any]] | None = None

    # As a view is read: always asynchronous, always followable.
    inline: ClassVar[bool] = False
    followable: ClassVar[bool] = True


Readable = View | Aggregator


class Issue(NamedTuple):
    """A command a policy sends: to `aggregate_id` (a new one for a creating command)."""

    command: Struct
    aggregate_id: str
    key: str = ""  # tells apart several commands from one event


@dataclass(frozen=True)
class Policy:
    name: str
    events: tuple[type[Struct], ...]
    react: Callable[[Any, EventMeta], Sequence[Issue]]


class Mail(NamedTuple):
    """One email, as a domain asks for it."""

    to: str
    subject: str
    body: str


@dataclass(frozen=True)
class Mailbox:
    """Emails a domain sends, each at most once, through the reactor's mailer (SMTP).

    Each `requested` event (on `aggregate`, one aggregate per email) asks for
    `compose(event)`. The mailer asks the aggregate, through its own
    commands, first `begin()` just before it hands the message to the SMTP
    server (refused unless the email is still due: so never twice), then
    `sent()` or `failed(reason)`. `status(state)` tells where an email stands:
    "due", "handing_over" (a hand-over began and its end was not recorded:
    its outcome is unknown, so it is not tried again), "sent" or "failed".
    """

    aggregate: str
    requested: type[Struct]
    compose: Callable[[Any], Mail]
    status: Callable[[Any], Literal["due", "handing_over", "sent", "failed"]]
    begin: Callable[[], Struct]
    sent: Callable[[], Struct]
    failed: Callable[[str], Struct]


@dataclass(frozen=True)
class SignIn:
    """What browser sessions sign in against: an inline view of credentials.

    `key(email)` is the record of an email address; the record has the
    fields `user_id`, `email`, `display_name` and `password_hash` (argon2).
    `signin_page` and `signup_page`: where the browser signs in and up.
    """

    view: str
    key: Callable[[str], str]
    signin_page: str
    signup_page: str


@dataclass(frozen=True)
class ListRead:
    """GET /api/<collection>: records newest first (keys in reverse order), by cursor; an
    aggregator's records by rank, highest first, when it ranks them.

    `filters` name fields of the records a client may filter on
    (`?status=shipped`), compared as text.

    With `action` and `parent`: GET /api/<collection>/{<param>}/<action>, the
    records of `view` under the key `{<param>}.` (an account's ledger entries,
    `<account id>.<position>`), 404 when the `parent` view has no record `{<param>}`.
    """

    collection: str
    view: str
    filters: tuple[str, ...] = ()
    summary: str = ""
    action: str | None = None
    parent: str | None = None  # the view of the records whose {param} is the prefix
    param: str = "id"

    @property
    def path(self) -> str:
        base = f"/api/{self.collection}"
        return base if self.action is None else f"{base}/{{{self.param}}}/{self.action}"


@dataclass(frozen=True)
class GetRead:
    """GET /api/<collection>/{<param>} (or .../<action>), and /live when the view is followable."""

    collection: str
    view: str
    summary: str = ""
    action: str | None = None  # e.g. "summary": GET /api/users/{id}/summary
    param: str = "id"  # what the path names the record by

    @property
    def path(self) -> str:
        base = f"/api/{self.collection}/{{{self.param}}}"
        return base if self.action is None else f"{base}/{self.action}"


@dataclass(frozen=True)
class SummaryRead:
    """GET <path>: every record of a (small) view, rendered by a pure function."""

    path: str
    view: str
    render: Callable[[list[Any]], Struct]
    schema: type[Struct]
    summary: str = ""


Read = ListRead | GetRead | SummaryRead


@dataclass(frozen=True)
class WebPage:
    """The domain's page: an ES module `module` (in `folder`) shown at `path`."""

    title: str
    path: str
    folder: Path
    module: str = "page.js"
    summary: str = ""  # a line for the home page


class Imported(NamedTuple):
    """A record of the previous version, as the events that make it now."""

    aggregate: str
    aggregate_id: str
    events: list[Struct]
    at: datetime
    reserve: tuple[tuple[str, str], ...] = ()  # (scope, value) of its unique values


@dataclass(frozen=True)
class LegacyBucket:
    """A bucket the previous version (views built from commands, no EVENTS) wrote.

    `task migrate` turns each record into events with `read(key, value)`; a
    bucket without `read` held something the views now derive, and is dropped.
    """

    bucket: str
    read: Callable[[str, bytes], Imported | None] | None = None


@dataclass(frozen=True)
class Domain:
    name: str
    title: str
    commands: tuple[CommandSpec, ...]
    events: tuple[Event, ...]
    aggregates: tuple[Aggregate, ...]
    views: tuple[View, ...] = ()
    policies: tuple[Policy, ...] = ()
    reads: tuple[Read, ...] = ()
    page: WebPage | None = None
    legacy: tuple[LegacyBucket, ...] = ()
    mailboxes: tuple[Mailbox, ...] = ()
    sign_in: SignIn | None = None
    aggregators: tuple[Aggregator, ...] = ()
