"""Shipments and accounting as pure functions: given events, when a command, then events."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from contracts.domain import Rejection
from domains.accounting import aggregate as accounts
from domains.accounting.billing import bill
from domains.accounting.commands import ChargeAccount, OpenAccount, RecordPayment
from domains.accounting.events import AccountCharged, AccountOpened, PaymentRecorded
from domains.accounting.views import (
    LEDGER_KEPT,
    AccountRecord,
    Entry,
    account,
    ledger_entry,
    ledger_key,
)
from domains.shipments import aggregate as shipments
from domains.shipments.commands import (
    COUNTRIES,
    CancelShipment,
    CreateShipment,
    DeliverShipment,
    ShipShipment,
    check_countries,
)
from domains.shipments.events import (
    ShipmentCancelled,
    ShipmentCreated,
    ShipmentDelivered,
    ShipmentShipped,
)
from domains.shipments.tariff import price
from domains.shipments.views import shipment
from tests.domain_testing import T0, given, meta

CREATE = CreateShipment("acc1", "GB", "FR", 1200)


CREATED = ShipmentCreated("acc1", "GB", "FR", 1200, price(1200, "GB", "FR"))


def when_shipment(events: list[msgspec.Struct], command: Any) -> Any:
    return shipments.decide(given(shipments.evolve, *events), command)


def test_the_tariff_is_a_base_and_a_rate_per_started_half_kilo() -> None:
    assert price(1, "GB", "GB") == 350 + 120
    assert price(500, "GB", "GB") == 350 + 120
    assert price(501, "GB", "GB") == 350 + 240
    assert price(1200, "GB", "FR") == 350 + 3 * 450
    assert price(30_000, "DE", "DE") == 350 + 60 * 120


def test_a_shipment_is_created_with_its_price() -> None:
    assert when_shipment([], CREATE) == [CREATED]


@pytest.mark.parametrize(
    ("history", "command", "then"),
    [
        ([CREATED], ShipShipment(), [ShipmentShipped()]),
        (
            [CREATED, ShipmentShipped()],
            DeliverShipment(),
            [ShipmentDelivered("acc1", CREATED.price)],
        ),
        ([CREATED], CancelShipment(), [ShipmentCancelled()]),
    ],
)
def test_valid_transitions(history: list[msgspec.Struct], command: Any, then: list[Any]) -> None:
    assert when_shipment(history, command) == then


@pytest.mark.parametrize(
    ("history", "command", "state"),
    [
        ([CREATED], DeliverShipment(), "created"),
        ([CREATED, ShipmentShipped()], ShipShipment(), "shipped"),
        ([CREATED, ShipmentShipped()], CancelShipment(), "shipped"),
        ([CREATED, ShipmentCancelled()], ShipShipment(), "cancelled"),
        ([CREATED, ShipmentShipped(), ShipmentDelivered("acc1", 1)], CancelShipment(), "delivered"),
        (
            [CREATED, ShipmentShipped(), ShipmentDelivered("acc1", 1)],
            DeliverShipment(),
            "delivered",
        ),
    ],
)
def test_any_other_transition_is_a_409_naming_the_state(
    history: list[msgspec.Struct], command: Any, state: str
) -> None:
    refused = when_shipment(history, command)
    assert isinstance(refused, Rejection)
    assert refused.status == 409
    assert f"The shipment is {state}" in refused.detail


def test_an_action_on_no_shipment_is_a_404() -> None:
    refused = when_shipment([], ShipShipment())
    assert isinstance(refused, Rejection)
    assert refused.status == 404


def test_the_shipment_view_keeps_its_history() -> None:
    events = [CREATED, ShipmentShipped(), ShipmentDelivered("acc1", CREATED.price)]
    record = None
    for seq, event in enumerate(events, start=10):
        record = shipment(record, event, meta(seq, event, "s1"))
    assert record is not None
    assert (record.id, record.status, record.price, record.account_id) == (
        "s1",
        "delivered",
        CREATED.price,
        "acc1",
    )
    assert [(s.event, s.status, s.position) for s in record.history] == [
        ("ShipmentCreated", "created", 10),
        ("ShipmentShipped", "shipped", 11),
        ("ShipmentDelivered", "delivered", 12),
    ]


def test_a_delivery_bills_its_account_with_the_shipment_as_reference() -> None:
    (issue,) = bill(ShipmentDelivered("acc1", 1234), meta(7, ShipmentShipped(), "ship9"))
    assert issue.command == ChargeAccount(1234, "ship9")
    assert issue.aggregate_id == "acc1"


OPENED = AccountOpened("Ada")


def when_account(events: list[msgspec.Struct], command: Any) -> Any:
    return accounts.decide(given(accounts.evolve, *events), command)


def test_an_account_is_opened_once() -> None:
    assert when_account([], OpenAccount("Ada")) == [OPENED]
    assert when_account([OPENED], OpenAccount("Ada")) == []


def test_a_reference_is_applied_once_for_ever() -> None:
    charged = AccountCharged(500, "ship1")
    assert when_account([OPENED], ChargeAccount(500, "ship1")) == [charged]
    assert when_account([OPENED, charged], ChargeAccount(500, "ship1")) == []  # sent again
    other = when_account([OPENED, charged], ChargeAccount(700, "ship1"))
    assert isinstance(other, Rejection)
    assert other.status == 409
    # A payment's references are its own: the same text as a charge is another entry.
    assert when_account([OPENED, charged], RecordPayment(500, "ship1")) == [
        PaymentRecorded(500, "ship1")
    ]


def test_folding_onto_an_account_state_leaves_that_state_as_it_was() -> None:
    """The reactor folds onto states it remembers and may drop the result (a conflict):
    the state it started from must still say what it said."""
    before = given(accounts.evolve, OPENED)
    charged = AccountCharged(500, "ship1")
    after = accounts.evolve(before, charged, meta(2, charged))
    assert when_account([OPENED, charged], ChargeAccount(500, "ship1")) == []
    assert accounts.decide(after, ChargeAccount(500, "ship1")) == []
    assert accounts.decide(before, ChargeAccount(500, "ship1")) == [charged]
    # And another entry folded onto the old state does not see the first.
    paid = PaymentRecorded(100, "p1")
    other = accounts.evolve(before, paid, meta(2, paid))
    assert accounts.decide(other, ChargeAccount(500, "ship1")) == [charged]
    assert accounts.decide(other, RecordPayment(100, "p1")) == []


def test_charges_and_payments_need_an_account() -> None:
    refused = when_account([], RecordPayment(1, "x"))
    assert isinstance(refused, Rejection)
    assert refused.status == 404


def test_the_balance_is_what_the_holder_owes_with_its_checkpoint() -> None:
    events: list[msgspec.Struct] = [
        OPENED,
        AccountCharged(1000, "a"),
        AccountCharged(250, "b"),
        PaymentRecorded(600, "p1"),
    ]
    record: AccountRecord | None = None
    for seq, event in enumerate(events, start=40):
        record = account(record, event, meta(seq, event, "acc1"))
    assert record is not None
    assert record.balance == 1000 + 250 - 600
    assert record.position == 43
    assert record.ledger == [
        Entry("charge", 1000, "a", T0),
        Entry("charge", 250, "b", T0),
        Entry("payment", 600, "p1", T0),
    ]
    assert record.entries == 3


def test_an_accounts_record_keeps_its_latest_entries_and_counts_them_all() -> None:
    """The ledger was the whole of it: every entry copied into the record, rewritten whole
    by each charge (a cost growing with the account, and a record that stops fitting
    in a KV value). It now keeps the latest LEDGER_KEPT; each entry is a record of the
    ledger view, under the account's id, listed newest first."""
    record = account(None, OPENED, meta(1, OPENED, "acc1"))
    charges = [AccountCharged(100 + n, f"r{n}") for n in range(LEDGER_KEPT + 5)]
    for seq, charge in enumerate(charges, start=2):
        record = account(record, charge, meta(seq, charge, "acc1"))
        kept = charges[max(0, seq - 1 - LEDGER_KEPT) : seq - 1]
        assert [e.reference for e in record.ledger] == [c.reference for c in kept]
        assert record.entries == seq - 1
    assert record.balance == sum(c.amount for c in charges)
    # A record written before `entries` was kept held its whole ledger: counted from it.
    before = msgspec.json.decode(
        b'{"id":"acc1","holder":"Ann","balance":300,"opened_at":"2026-11-25T12:00:00Z",'
        b'"position":3,"ledger":[{"kind":"charge","amount":100,"reference":"a","at":'
        b'"2026-11-25T12:00:00Z"},{"kind":"charge","amount":200,"reference":"b","at":'
        b'"2026-11-25T12:00:00Z"}]}',
        type=AccountRecord,
    )
    paid = PaymentRecorded(50, "p")
    after = account(before, paid, meta(4, paid, "acc1"))
    assert (after.entries, after.balance, len(after.ledger)) == (3, 250, 3)
    entries = [
        ledger_entry(None, event, meta(seq, event, "acc1"))
        for seq, event in ((9, AccountCharged(5, "x")), (10, paid), (123, paid))
    ]
    assert [(e.kind, e.amount, e.position) for e in entries] == [
        ("charge", 5, 9),
        ("payment", 50, 10),
        ("payment", 50, 123),
    ]
    keys = [ledger_key(paid, meta(seq, paid, "acc1")) for seq in (9, 10, 123)]
    assert keys == ["acc1.000000000009", "acc1.000000000010", "acc1.000000000123"]
    assert sorted(keys) == keys  # by key is by position


def test_a_shipments_ends_are_countries() -> None:
    form = CreateShipment("acc", "GB", "FR", 500)
    assert check_countries(form, T0) == []
    wrong = check_countries(CreateShipment("acc", "UK", "GB", 500), T0)
    assert [e.loc for e in wrong] == ["$.origin"]  # the United Kingdom is GB
    assert len(COUNTRIES) >= 249
