"""Deliveries under open-loop load: to the delivery's `succeeded`, and to the charge's notice.

Each delivery makes the billing policy send a ChargeAccount command; its
notice reaches the delivering session `caused_by` the delivery. Setup (not
timed): per session an account and enough shipped shipments. Then
`POST /api/shipments/{id}/deliver` on a fixed schedule, timing from just
before the POST to the delivery's notice and to the charge's notice on the
session's event stream.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import msgspec

from bench.loadgen import Result, Sample, Session, schedule

WAIT = {"Prefer": "wait=10"}


@dataclass
class Deliveries:
    delivered: Result
    charged: list[float] = field(default_factory=list)  # seconds, POST to the charge's notice


async def _post(session: Session, path: str, body: bytes, expect: int) -> dict[str, object]:
    response = await session.client.request("POST", path, body, WAIT)
    if response.status != expect:
        raise RuntimeError(f"{path}: {response.status} {response.body[:200]!r}")
    answer: dict[str, object] = msgspec.json.decode(response.body)
    return answer


async def shipped(session: Session, account_id: str, n: int) -> list[str]:
    """`n` shipments of the account, created and shipped (Prefer: wait, 20 at a time)."""
    gate = asyncio.Semaphore(20)
    body = b'{"account_id":"%s","origin":"GB","destination":"FR","weight_grams":1200}'

    async def one() -> str:
        async with gate:
            made = await _post(session, "/api/shipments", body % account_id.encode(), 201)
            shipment_id = str(made["id"])
            await _post(session, f"/api/shipments/{shipment_id}/ship", b"{}", 200)
            return shipment_id

    return list(await asyncio.gather(*(one() for _ in range(n))))


async def deliveries(url: str, rate: float, duration: float, sessions: int = 4) -> Deliveries:
    count = int(rate * duration)
    opened = [await Session(url).__aenter__() for _ in range(sessions)]
    try:
        ready: list[list[str]] = []
        for i, session in enumerate(opened):
            account = await _post(session, "/api/accounts", b'{"holder":"bench %d"}' % i, 201)
            ready.append(await shipped(session, str(account["id"]), -(-count // sessions)))
        charged: list[float] = []

        async def deliver(i: int) -> Sample:
            session, shipment_id = opened[i % sessions], ready[i % sessions][i // sessions]
            sample = Sample(sent=time.time())
            path = f"/api/shipments/{shipment_id}/deliver"
            response = await session.client.request("POST", path, b"{}", {})
            if response.status != 202:
                raise RuntimeError(f"{response.status} {response.body[:200]!r}")
            command_id = msgspec.json.decode(response.body)["command_id"]
            sample.done, sample.notice = await session.notice_of(command_id)
            at, charge = await session.notice_caused_by(command_id)
            if charge.status != "succeeded":
                raise RuntimeError(f"charge failed: {charge.error}")
            charged.append(at - sample.sent)
            return sample

        return Deliveries(await schedule(rate, duration, deliver), charged)
    finally:
        for session in opened:
            await session.__aexit__(None, None, None)
