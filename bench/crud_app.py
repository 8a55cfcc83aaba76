"""The synchronous CRUD alternative a user would otherwise write (baseline, not the service).

POST /locations validates the body like the service does, writes the record to
a KV bucket and returns it: one request, one durable write, the resource in
the answer. No command, no reactor, no notice, no name uniqueness.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import uvicorn
from nats.js.kv import KeyValue
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from contracts.commands import encoder
from contracts.connection import NatsSettings, connect
from contracts.validation import InvalidPayload, MalformedBody, decode_payload
from domains.locations.commands import CreateLocation
from domains.locations.views import LocationRecord

BUCKET = "crud_locations"


def create_app() -> Starlette:
    kv: list[KeyValue] = []

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        nc = await connect(NatsSettings.from_env(), name="crud-baseline")
        kv.append(await nc.jetstream().create_key_value(bucket=BUCKET))
        yield
        await nc.close()

    async def create(request: Request) -> Response:
        try:
            payload = decode_payload(CreateLocation, await request.body())
        except (MalformedBody, InvalidPayload) as exc:
            return JSONResponse({"detail": str(exc)}, status_code=422)
        now = datetime.now(UTC)
        location_id = (
            f"{int(time.time() * 1000):012x}{hashlib.sha256(uuid.uuid4().bytes).hexdigest()[:12]}"
        )
        location = LocationRecord(
            location_id, payload.name, payload.category, payload.description, now
        )
        await kv[0].put(location_id, encoder.encode(location))
        body: Any = encoder.encode(location)
        return Response(
            body,
            status_code=201,
            media_type="application/json",
            headers={"Location": f"/locations/{location_id}"},
        )

    return Starlette(routes=[Route("/locations", create, methods=["POST"])], lifespan=lifespan)


if __name__ == "__main__":
    config = uvicorn.Config(create_app(), host="127.0.0.1", port=0, access_log=False)
    asyncio.run(uvicorn.Server(config).serve())
