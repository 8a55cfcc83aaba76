"""`GET /api/<collection>/{id}/live`: one record of a followable view, as it changes (SSE).

The stream subscribes to the record's KV subject first, then reads the record
(subscribe, then check), and sends `event: state` with the record's state as
data and its position as id: once for the current state, then for every
write with a higher position (so an update that raced the first read is
neither lost nor sent twice). When `task rebuild` moves the views to new
buckets the stream ends, and EventSource reconnects to the new ones.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from typing import Any, Final

import msgspec
import nats.errors
from nats.aio.msg import Msg
from sse_starlette import ServerSentEvent
from starlette.requests import Request
from starlette.responses import Response

from api.eventstream import Channel
from api.inbox import MAX_WAITING
from api.problems import not_found
from api.services import Endpoint, services
from api.sse import SEP, hello_event
from api.streams import event_source
from api.urls import resource_id_param
from contracts.domain import GetRead, Readable
from contracts.topology import view_bucket
from contracts.views import Record, is_removed, record_decoder

CHANGED: Final = object()


def live_endpoint(read: GetRead, view: Readable) -> Endpoint:
    async def follow(request: Request) -> Response:
        svc = services(request)
        key = resource_id_param(request, read.collection, read.param)
        # Together: a switch of the views while this opens ends the stream (it reconnects).
        buckets, changed = svc.views.current, svc.views.changed
        subject = f"$KV.{view_bucket(view.name, buckets.version)}.{key}"
        updates: Channel[Record | object] = Channel()  # collects from the subscription on

        async def on_write(msg: Msg) -> None:
            try:
                record = record_decoder.decode(msg.data)
                # A client reading slowly is sent the newest state, not every one.
                updates.put_bounded(record, MAX_WAITING, record)
            except msgspec.DecodeError:
                return  # a delete marker or a purge: not a record

        sub = await svc.nc.subscribe(subject, cb=on_write)

        async def unsubscribe() -> None:
            with contextlib.suppress(nats.errors.Error):  # the connection may be gone
                await sub.unsubscribe()

        try:
            await svc.nc.flush()
            current = await buckets.record(view.name, key)
            if current is None or is_removed(current):
                raise not_found(f"The {read.collection} resource")

            async def stream(channel: Channel[Any]) -> AsyncGenerator[ServerSentEvent, None]:
                yield hello_event(svc.settings.sse_retry_ms)
                yield state_event(current)
                position = current.position
                watcher = asyncio.ensure_future(changed.wait())
                watcher.add_done_callback(lambda _: updates.put_nowait(CHANGED))
                try:
                    while (item := await channel.next()) is not None:
                        if item is CHANGED or changed.is_set():  # its mark may be dropped
                            return
                        assert isinstance(item, Record)
                        if item.position > position:
                            position = item.position
                            yield state_event(item)
                finally:
                    watcher.cancel()

            # The subscription ends with the response, however it ends.
            return event_source(svc, request, stream, on_close=unsubscribe, channel=updates)
        except BaseException:
            await unsubscribe()
            raise

    return follow


def state_event(record: Record) -> ServerSentEvent:
    """`event: state`, the record's state as data, its position as id."""
    return ServerSentEvent(
        data=bytes(record.state).decode(), event="state", id=str(record.position), sep=SEP
    )
