from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
import pytest

from contracts.notices import FieldError
from contracts.validation import InvalidPayload, MalformedBody, decode_payload
from domains.accounting.commands import RecordPayment
from domains.locations.commands import CreateLocation
from domains.shipments.commands import CreateShipment


def errors_of(body: bytes) -> list[FieldError]:
    with pytest.raises(InvalidPayload) as info:
        decode_payload(CreateLocation, body)
    return info.value.errors


def test_valid_body_is_decoded_and_trimmed() -> None:
    cmd = decode_payload(
        CreateLocation, b'{"name": "  Leeds ", "category": "City", "description": " x "}'
    )
    assert cmd == CreateLocation(name="Leeds", category="City", description="x")


def test_description_is_optional() -> None:
    assert decode_payload(CreateLocation, b'{"name":"A","category":"Town"}').description == ""


def test_blank_name_is_empty_after_trimming() -> None:
    assert errors_of(b'{"name":"   ","category":"City"}') == [
        FieldError(loc="$.name", msg="must not be empty")
    ]


def test_name_length_counts_after_trimming() -> None:
    padded = b'{"name":"  ' + b"a" * 100 + b'  ","category":"City"}'
    assert decode_payload(CreateLocation, padded).name == "a" * 100
    too_long = b'{"name":"' + b"a" * 101 + b'","category":"City"}'
    assert errors_of(too_long) == [FieldError(loc="$.name", msg="must be at most 100 characters")]


def test_every_error_is_reported_at_its_field() -> None:
    body = b'{"name":"","category":"Village","description":5,"colour":"red"}'
    assert errors_of(body) == [
        FieldError(loc="$.name", msg="must not be empty"),
        FieldError(
            loc="$.category", msg="must be one of: Town, City, County/Region, Country, Continent"
        ),
        FieldError(loc="$.description", msg="must be a string, not an integer"),
        FieldError(loc="$.colour", msg="is not a known field"),
    ]


def test_missing_fields_are_required() -> None:
    assert errors_of(b"{}") == [
        FieldError(loc="$.name", msg="is required"),
        FieldError(loc="$.category", msg="is required"),
    ]


def test_description_limit() -> None:
    body = b'{"name":"A","category":"City","description":"' + b"d" * 1001 + b'"}'
    assert errors_of(body) == [
        FieldError(loc="$.description", msg="must be at most 1000 characters")
    ]


def test_non_object_body() -> None:
    assert errors_of(b"[1, 2]") == [FieldError(loc="$", msg="must be an object, not an array")]


def test_a_type_field_is_not_a_known_field() -> None:
    assert [e.loc for e in errors_of(b'{"type":"Other","name":"A","category":"City"}')] == [
        "$.type"
    ]


@pytest.mark.parametrize("body", [b"", b"{", b"not json", b'{"name": }'])
def test_malformed_json(body: bytes) -> None:
    with pytest.raises(MalformedBody, match="not valid JSON"):
        decode_payload(CreateLocation, body)


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b'{"name":"\xff\xfe","category":"City"}', "not valid UTF-8"),
        (b"[" * 1000 + b"]" * 1000, "nested too deeply"),
        (b'{"name":' + b"[" * 3000 + b"]" * 3000 + b"}", "nested too deeply"),
    ],
)
def test_a_body_that_is_not_utf8_or_too_deep_is_malformed_not_a_crash(
    body: bytes, why: str
) -> None:
    with pytest.raises(MalformedBody, match=why):
        decode_payload(CreateLocation, body)


def test_a_person_reads_what_is_wrong_not_the_schema() -> None:
    """Errors said the schema ("Expected `str` matching regex '^[A-Z]{2}$'"): a pattern
    is now what its type describes itself as, a bound and a date are said in words."""
    with pytest.raises(InvalidPayload) as shipment:
        decode_payload(
            CreateShipment,
            b'{"account_id":"no such id!","origin":"gb","destination":"FR","weight_grams":0}',
        )
    assert [(e.loc, e.msg) for e in shipment.value.errors] == [
        ("$.account_id", "must be one of the accounts"),
        ("$.origin", "must be a two-letter country code such as GB"),
        ("$.weight_grams", "must be at least 1"),
    ]
    with pytest.raises(InvalidPayload) as payment:
        decode_payload(RecordPayment, b'{"amount":1000000001,"reference":"a b"}')
    assert [(e.loc, e.msg) for e in payment.value.errors] == [
        ("$.amount", "must be at most 1000000000"),
        ("$.reference", "must be letters, digits and punctuation, with no spaces"),
    ]
    with pytest.raises(InvalidPayload) as undescribed:
        decode_payload(Stamped, b'{"token":"not a token","at":"yesterday"}')
    assert [(e.loc, e.msg) for e in undescribed.value.errors] == [
        ("$.token", "is not in the form it must have"),
        ("$.at", "must be a date and time such as 2026-11-29T12:00:00Z"),
    ]
    with pytest.raises(InvalidPayload) as naive:
        decode_payload(Stamped, b'{"token":"t","at":"2026-11-29T12:00:00"}')
    assert [(e.loc, e.msg) for e in naive.value.errors] == [
        ("$.at", "must say its time zone (Z or +01:00, say)")
    ]


class Stamped(msgspec.Struct):
    token: Annotated[str, msgspec.Meta(pattern=r"^[a-z]+$")]
    at: Annotated[datetime, msgspec.Meta(tz=True)]
