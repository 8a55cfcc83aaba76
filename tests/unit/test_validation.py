from __future__ import annotations

import pytest

from contracts.notices import FieldError
from contracts.validation import InvalidPayload, MalformedBody, decode_payload
from domains.locations.commands import CreateLocation


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
