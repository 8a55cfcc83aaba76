"""The read side (DESIGN §4 Reads): a KV get and a decode, for every view a domain declares.

- `GET /api/<collection>`: records newest first (keys in reverse order: ids
  are time-ordered), `?limit=` (1-200, default 50) and `?cursor=` (the
  `next_cursor` of the page before). The cursor is the last key served, and a
  page holds the keys below it, so records added meanwhile (newer, higher
  keys) never shift a page: each record is served once.
- An aggregator that ranks its records lists them highest rank first (ties
  by key), from its partitions' rankings; the cursor is `<rank>.<key>` of
  the last record served and a page holds those after it in that order. A
  ranking moves while it is paged: a record whose rank rises past the
  cursor meanwhile is not served again, one that falls past it may be.
- `GET /api/<collection>/{id}/<action>` (a list read with a parent): the
  records under the key `<id>.` (an account's ledger), as a list; 404 when the
  parent view has no record `<id>`.
- `GET /api/<collection>/{id}`: one record, 404 when absent.
- A summary read renders every record of a small view through the domain's
  pure function.
- Each read accepts `?min_position=N` (a notice's `position`): it answers
  once the view has applied the events up to N. Inline views are written
  before the notice, so they always have; an async view is waited for (a
  subscription to its progress key wakes the wait) up to MIN_POSITION_WAIT,
  then 503 with Retry-After. For an async view a position beyond the end of
  the event store is 422; an inline view answers at once, unasked.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from typing import Final

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from api.headers import whole_number
from api.problems import HTTPProblem, invalid_query, not_found
from api.services import Endpoint, Services, services
from api.urls import resource_id_param
from contracts.commands import encoder
from contracts.domain import Aggregator, GetRead, ListRead, Readable, SummaryRead
from contracts.topology import EVENTS_STREAM
from contracts.views import Record, ViewBuckets, is_removed

DEFAULT_LIMIT: Final = 50
MAX_LIMIT: Final = 200
MIN_POSITION_WAIT: Final = 5.0
SCAN_CHUNK: Final = 100  # records read at once while filtering
MAX_SCAN: Final = 5_000  # keys a filtered page looks at, at most
RECHECK: Final = 0.5  # seconds between checks of a wait's progress, woken or not
CURSOR: Final = re.compile(r"^[-/_=.a-zA-Z0-9]{1,256}$")
RANK_CURSOR: Final = re.compile(r"^-?[0-9]{1,18}\.[0-9A-Za-z_-]{1,64}$")  # <rank>.<key>


class Page(msgspec.Struct, frozen=True):
    items: list[msgspec.Raw]
    limit: int
    next_cursor: str | None


def list_endpoint(read: ListRead, view: Readable, parent: Readable | None = None) -> Endpoint:
    """`parent`: the view whose record the path names (`read.parent`); the records
    listed are those of `view` under its key."""
    ranked = isinstance(view, Aggregator) and view.rank is not None
    fixed = {
        name: values
        for name in read.filters
        if (values := filter_values(view.state, name)) is not None
    }

    async def list_records(request: Request) -> Response:
        svc = services(request)
        under = "" if parent is None else resource_id_param(request, read.collection, read.param)
        limit = _limit(request)
        cursor = request.query_params.get("cursor")
        if cursor is not None and not (RANK_CURSOR if ranked else CURSOR).match(cursor):
            raise invalid_query("cursor", "the next_cursor of a page")
        if cursor is not None and under and not cursor.startswith(f"{under}."):
            raise invalid_query("cursor", "the next_cursor of a page of this list")
        wanted = _filters(request, read.filters, fixed)
        buckets = await _caught_up(svc, view, request)
        if parent is not None and not await buckets.exists(parent.name, under):
            raise not_found(f"The {read.collection} resource")
        if ranked:
            return await _ranked(buckets, view.name, limit, cursor, wanted)
        records_only = isinstance(view, Aggregator)
        prefix = f"{under}." if under else ""
        keys = sorted(
            await buckets.keys(view.name, prefix, records_only=records_only), reverse=True
        )
        if cursor is not None:
            keys = [k for k in keys if k < cursor]
        items, last = await _page(buckets, view.name, keys, limit, wanted)
        next_cursor = last if last is not None and last != keys[-1] else None
        return _json(encoder.encode(Page(items, limit, next_cursor)))

    return list_records


async def _ranked(
    buckets: ViewBuckets, name: str, limit: int, cursor: str | None, wanted: dict[str, str]
) -> Response:
    """A page of an aggregator's records, highest rank first, after `<rank>.<key>`."""
    order = sorted((-rank, key) for key, rank in (await buckets.ranking(name)).items())
    if cursor is not None:
        rank, key = cursor.split(".", 1)  # matched RANK_CURSOR
        after = (-int(rank), key)
        order = [entry for entry in order if entry > after]
    keys = [key for _, key in order]
    items, last = await _page(buckets, name, keys, limit, wanted)
    next_cursor = None
    if last is not None and last != keys[-1]:
        next_cursor = f"{-order[keys.index(last)][0]}.{last}"
    return _json(encoder.encode(Page(items, limit, next_cursor)))


async def _page(
    buckets: ViewBuckets, view: str, keys: list[str], limit: int, wanted: dict[str, str]
) -> tuple[list[msgspec.Raw], str | None]:
    """Up to `limit` records from `keys` (in order) that match `wanted`; the last key looked at.

    Without filters that is the first `limit` keys. With them, keys are read in
    chunks until the page is full or MAX_SCAN keys were looked at; the page
    may then be short, and its cursor goes on from where the scan stopped.
    """
    items: list[msgspec.Raw] = []
    last: str | None = None
    chunk = limit if not wanted else max(limit, SCAN_CHUNK)
    for start in range(0, min(len(keys), MAX_SCAN if wanted else limit), chunk):
        part = keys[start : start + chunk]
        found = await buckets.records(view, part)
        for key in part:
            last = key
            record = found.get(key)
            if record is not None and not is_removed(record) and record_matches(record, wanted):
                items.append(record.state)
                if len(items) == limit:
                    return items, last
    return items, last


def record_matches(record: Record, wanted: dict[str, str]) -> bool:
    if not wanted:
        return True
    state = msgspec.json.decode(record.state)
    return all(as_query(state.get(name)) == value for name, value in wanted.items())


def as_query(value: object) -> str:
    """A field's value as a filter names it: text as it is, anything else as JSON
    (`?done=true`; Python's `str` made it `True`, and `?done=true` matched nothing)."""
    return value if isinstance(value, str) else msgspec.json.encode(value).decode()


def filter_values(state: type, name: str) -> list[str] | None:
    """The values a list's filter may take when its field's are a fixed set (a Literal,
    a bool); None for any short text."""
    schema = msgspec.json.schema(state)
    field = schema["$defs"][state.__name__]["properties"][name]
    values = [True, False] if field.get("type") == "boolean" else field.get("enum")
    return None if values is None else [as_query(v) for v in values]


def _filters(
    request: Request, names: tuple[str, ...], fixed: dict[str, list[str]]
) -> dict[str, str]:
    wanted = {}
    for name in names:
        value = request.query_params.get(name)
        if value is not None:
            if not 1 <= len(value) <= 256:
                raise invalid_query(name, "1 to 256 characters")
            if name in fixed and value not in fixed[name]:  # it matched nothing, quietly
                raise invalid_query(name, "one of: " + ", ".join(fixed[name]))
            wanted[name] = value
    return wanted


def get_endpoint(read: GetRead, view: Readable) -> Endpoint:
    async def get_record(request: Request) -> Response:
        svc = services(request)
        key = resource_id_param(request, read.collection, read.param)
        buckets = await _caught_up(svc, view, request)
        record = await buckets.record(view.name, key)
        if record is None or is_removed(record):
            raise not_found(f"The {read.collection} resource")
        return _json(bytes(record.state))

    return get_record


def summary_endpoint(read: SummaryRead, view: Readable) -> Endpoint:
    decoder = msgspec.json.Decoder(view.state)

    async def summary(request: Request) -> Response:
        svc = services(request)
        buckets = await _caught_up(svc, view, request)
        found = await buckets.records(view.name, await buckets.keys(view.name))
        states = [decoder.decode(r.state) for r in _live(found)]
        return _json(encoder.encode(read.render(states)))

    return summary


def _live(records: dict[str, Record]) -> list[Record]:
    return [r for r in records.values() if not is_removed(r)]


def _json(body: bytes) -> Response:
    return Response(body, media_type="application/json")


async def _caught_up(svc: Services, view: Readable, request: Request) -> ViewBuckets:
    """The buckets to read, once the view has got to `?min_position=` (if asked)."""
    buckets = svc.views.current
    raw = request.query_params.get("min_position")
    if raw is None:
        return buckets
    wanted = whole_number(raw)
    if wanted is None:
        raise invalid_query("min_position", "a position in the event store (a notice's position)")
    if view.inline or await buckets.position(view) >= wanted:
        return buckets
    if wanted > (await svc.js.stream_info(EVENTS_STREAM)).state.last_seq:
        raise invalid_query("min_position", "at most the event store's last position")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + MIN_POSITION_WAIT
    # Subscribe to the view's progress (an aggregator's: its partitions'), then check:
    # woken by the write that gets there, not by a poll. (Checked again now and then:
    # a rebuild may switch the buckets meanwhile, and the subscription is on one
    # version's.)
    sub = await svc.nc.subscribe(buckets.progress_subject(view))
    try:
        while (remaining := deadline - loop.time()) > 0:
            buckets = svc.views.current
            if await buckets.position(view) >= wanted:
                return buckets
            with contextlib.suppress(TimeoutError):
                await sub.next_msg(timeout=min(remaining, RECHECK))
    finally:
        await sub.unsubscribe()
    raise HTTPProblem(
        503,
        "View behind",
        f"The {view.name} view has not reached position {wanted} yet. Retry shortly.",
        slug="view-behind",
        headers={"Retry-After": "1"},
    )


def _limit(request: Request) -> int:
    limit = whole_number(request.query_params.get("limit", str(DEFAULT_LIMIT)))
    if limit is None or not 1 <= limit <= MAX_LIMIT:
        raise invalid_query("limit", f"an integer from 1 to {MAX_LIMIT}")
    return limit
