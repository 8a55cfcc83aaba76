"""Billing exactly once: deliveries under SIGKILL, and a charge sent again after its window."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from functools import partial

import msgspec
from nats.js import JetStreamContext

from contracts.commands import Command, encoder
from contracts.lookups import find_command, find_notice
from contracts.topology import EVENTS_STREAM, command_subject
from domains.accounting.commands import OpenAccount
from domains.shipments.commands import CreateShipment, DeliverShipment, ShipShipment
from domains.shipments.tariff import price
from tests.e2e.faults import kill_every_second, publish_all, settled, wait_for_notices
from tests.helpers import envelope, event_types, eventually, publish_command, view_state
from tests.processes import NatsServer, reactor, run_module

ACCOUNTS = 10
SHIPMENTS = 1000


def shipment_commands(accounts: list[Command]) -> tuple[list[Command], dict[str, tuple[str, int]]]:
    """CreateShipment commands spread over the accounts; each one's (account, price)."""
    rng = random.Random(7)
    made, billed = [], {}
    for _ in range(SHIPMENTS):
        account = rng.choice(accounts).aggregate_id
        weight = rng.randint(1, 30_000)
        route = rng.choice([("GB", "GB"), ("GB", "FR"), ("DE", "US")])
        command = envelope(CreateShipment(account, route[0], route[1], weight))
        made.append(command)
        billed[command.aggregate_id] = (account, price(weight, *route))
    return made, billed


def on_each(shipments: list[Command], payload: msgspec.Struct) -> list[Command]:
    return [envelope(payload, aggregate_id=s.aggregate_id) for s in shipments]


async def test_a_thousand_deliveries_under_sigkill_charge_exactly_a_thousand_times(
    fresh_server: NatsServer, fresh_js: JetStreamContext
) -> None:
    # The same reactor restarted each time (REACTOR_ID): it takes its jobs back at once.
    env = {"REACTOR_ACK_WAIT": "2", "REACTOR_MAX_ATTEMPTS": "1000", "REACTOR_ID": "victim"}
    victim = reactor(fresh_server.url, env=env).start()
    try:
        accounts = [envelope(OpenAccount(f"holder {i}")) for i in range(ACCOUNTS)]
        await publish_all(fresh_js, accounts)
        creates, billed = shipment_commands(accounts)
        await publish_all(fresh_js, creates)
        await publish_all(fresh_js, on_each(creates, ShipShipment()))
        ready = ACCOUNTS + 2 * SHIPMENTS
        await wait_for_notices(fresh_js, ready, within=120)

        # Deliver them all, spread over 5 s, while the reactor is killed every second;
        # each delivery makes the billing policy send a charge: two notices each.
        delivers = on_each(creates, DeliverShipment())
        publishing = asyncio.create_task(publish_all(fresh_js, delivers, pause=0.5))
        kills = await kill_every_second(victim, fresh_js, until_notices=ready + 2 * SHIPMENTS)
        await publishing
        await settled(fresh_js)
    finally:
        victim.stop()
    assert kills >= 4, f"only {kills} kills: too few to prove anything"

    outcomes = await asyncio.gather(*(find_notice(fresh_js, c.command_id) for c in delivers))
    assert all(o is not None and o.notice.status == "succeeded" for o in outcomes)
    charges = [t for _, t in await event_types(fresh_js, "ev.account.>") if t == "AccountCharged"]
    assert len(charges) == SHIPMENTS

    owed: Counter[str] = Counter()
    charged: Counter[str] = Counter()
    for account_id, cost in billed.values():
        owed[account_id] += cost
        charged[account_id] += 1
    for opened in accounts:
        record = await view_state(fresh_js, "accounts", opened.aggregate_id)
        assert record["balance"] == owed[opened.aggregate_id]
        references = [e["reference"] for e in record["ledger"]]
        assert len(references) == len(set(references))
        assert record["entries"] == charged[opened.aggregate_id]

    rebuilt = await asyncio.to_thread(
        run_module, fresh_server.url, "reactor.rebuild", "--grace", "0"
    )
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert "the rebuilt views equal the old ones" in rebuilt.stdout


async def test_a_charge_sent_again_after_the_dedup_window_is_applied_once(
    fresh_server: NatsServer, fresh_js: JetStreamContext
) -> None:
    window = 1.0
    process = reactor(fresh_server.url, env={"NATS_DUPLICATE_WINDOW": str(window)}).start()
    try:
        config = (await fresh_js.stream_info("COMMANDS")).config
        assert config.duplicate_window == window
        account = envelope(OpenAccount("Once"))
        shipment = envelope(CreateShipment(account.aggregate_id, "GB", "GB", 100))
        steps = [
            account,
            shipment,
            envelope(ShipShipment(), aggregate_id=shipment.aggregate_id),
            envelope(DeliverShipment(), aggregate_id=shipment.aggregate_id),
        ]
        for command in steps:
            await publish_command(fresh_js, command)
            await eventually(partial(find_notice, fresh_js, command.command_id))

        async def charged() -> list[str] | None:
            record = await view_state(fresh_js, "accounts", account.aggregate_id)
            return [e["reference"] for e in record["ledger"]] if record["ledger"] else None

        assert await eventually(charged) == [shipment.aggregate_id]
        charge_events = await _charges(fresh_js, account.aggregate_id)
        assert len(charge_events) == 1

        # The policy's charge, sent again after the window: the same command id,
        # stored again by COMMANDS (its window has passed) and handled again.
        sessionless = await _policy_charge(fresh_js, account.aggregate_id)
        await asyncio.sleep(window + 0.5)
        before = (await fresh_js.stream_info(EVENTS_STREAM)).state.messages
        ack = await fresh_js.publish(
            command_subject(sessionless.type, sessionless.command_id),
            encoder.encode(sessionless),
            headers={"Nats-Msg-Id": sessionless.command_id},
        )
        assert not ack.duplicate  # outside the window: the server did not drop it
        # And the same charge under a new command id (a second policy, say).
        twin = msgspec.structs.replace(sessionless, command_id="f" * 32)
        await publish_command(fresh_js, twin)
        await eventually(lambda: find_notice(fresh_js, twin.command_id))
        await settled(fresh_js)
        assert (await fresh_js.stream_info(EVENTS_STREAM)).state.messages == before
        assert len(await _charges(fresh_js, account.aggregate_id)) == 1
        record = await view_state(fresh_js, "accounts", account.aggregate_id)
        assert (record["balance"], len(record["ledger"])) == (price(100, "GB", "GB"), 1)
    finally:
        process.stop()


async def _charges(js: JetStreamContext, account_id: str) -> list[str]:
    return [
        t for _, t in await event_types(js, f"ev.account.{account_id}") if t == "AccountCharged"
    ]


async def _policy_charge(js: JetStreamContext, account_id: str) -> Command:
    """The ChargeAccount command the billing policy sent to this account."""
    for subject, event_type in await event_types(js, f"ev.account.{account_id}"):
        if event_type == "AccountCharged":
            msg = await js.get_last_msg(EVENTS_STREAM, subject)
            command_id = (msg.headers or {})["Causation-Id"]
            command = await find_command(js, command_id)
            assert command is not None
            assert command.caused_by is not None
            return command
    raise AssertionError("no charge")
