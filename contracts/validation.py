"""Turn a request body into a command payload, or into a list of field errors.

msgspec stops at the first error; a form wants every error at once, each at
its field. So when the whole-object conversion fails, each field is converted
on its own to collect the rest. Text fields are trimmed before validation:
"  Leeds " is "Leeds", and "   " is empty.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Final, Literal, TypeVar, get_args, get_origin

import msgspec

from contracts.notices import FieldError

T = TypeVar("T", bound=msgspec.Struct)

_any_decoder: Final = msgspec.json.Decoder()
NOT_UTF8: Final = "The body is not valid UTF-8."
_AT = re.compile(r"^(?P<msg>.*?)(?: - at `(?P<path>\$[^`]*)`)?$", re.DOTALL)


class MalformedBody(ValueError):
    """The body is not JSON at all (HTTP 400)."""


class InvalidPayload(ValueError):
    """The body is JSON but breaks the schema (HTTP 422)."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{e.loc}: {e.msg}" for e in errors))
        self.errors = errors


def decode_payload(cls: type[T], body: bytes) -> T:
    """Decode and validate `body` as `cls`, raising MalformedBody or InvalidPayload."""
    try:
        raw = _any_decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise MalformedBody(_not_json(body, exc)) from None
    except UnicodeDecodeError:  # msgspec before 0.23 does not wrap it
        raise MalformedBody(NOT_UTF8) from None
    except RecursionError:
        raise MalformedBody("The body's JSON is nested too deeply.") from None
    if isinstance(raw, dict):
        raw = {k: v.strip() if isinstance(v, str) else v for k, v in raw.items()}
    try:
        return msgspec.convert(raw, cls)
    except msgspec.ValidationError as exc:
        raise InvalidPayload(field_errors(cls, raw, exc)) from None
    except RecursionError:
        raise MalformedBody("The body's JSON is nested too deeply.") from None


def _not_json(body: bytes, exc: msgspec.DecodeError) -> str:
    """What is wrong with a body msgspec could not decode. msgspec 0.23 reports bytes
    that are not UTF-8 as a DecodeError of its own wording: asked here, on the error
    path only, so that the answer says the same whatever msgspec is installed."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return NOT_UTF8
    return f"The body is not valid JSON: {exc}"


def field_errors(
    cls: type[msgspec.Struct], raw: Any, first: msgspec.ValidationError
) -> list[FieldError]:
    """Every field error in `raw`, in field order; `first` when none is found per field."""
    if not isinstance(raw, dict):
        return [_to_field_error(str(first), "", None)]
    fields = msgspec.structs.fields(cls)
    errors: list[FieldError] = []
    for f in fields:
        if f.encode_name not in raw:
            if f.required:
                errors.append(FieldError(loc=f"$.{f.encode_name}", msg="is required"))
            continue
        try:
            msgspec.convert(raw[f.encode_name], f.type)
        except msgspec.ValidationError as exc:
            errors.append(_to_field_error(str(exc), f".{f.encode_name}", f.type))
    known = {f.encode_name for f in fields}
    tag_field = cls.__struct_config__.tag_field
    if tag_field is not None:
        known.add(tag_field)
    errors.extend(
        FieldError(loc=f"$.{key}", msg="is not a known field") for key in raw if key not in known
    )
    return errors or [_to_field_error(str(first), "", None)]


def _to_field_error(message: str, prefix: str, typ: Any) -> FieldError:
    m = _AT.match(message)
    assert m is not None  # the pattern matches any string
    path = m.group("path") or "$"
    return FieldError(loc="$" + prefix + path[1:], msg=_friendly(m.group("msg"), typ))


_LENGTH = re.compile(r"^Expected `str` of length (?P<op>>=|<=) (?P<n>\d+)$")
_BOUND = re.compile(r"^Expected `(?:int|float)` (?P<op>>=|<=|>|<) (?P<n>-?[\d.e+]+)$")
_BOUNDS: Final = {">=": "at least", "<=": "at most", ">": "more than", "<": "less than"}
_TYPE = re.compile(r"^Expected `(?P<want>\w+)`, got `(?P<got>\w+)`$")
_NAMES: Final = {
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "object": "an object",
    "array": "an array",
    "null": "null",
}


def _friendly(msg: str, typ: Any) -> str:
    """Say msgspec's message the way a form would."""
    if m := _LENGTH.match(msg):
        n = int(m.group("n"))
        if m.group("op") == ">=":
            return "must not be empty" if n == 1 else f"must be at least {n} characters"
        return f"must be at most {n} characters"
    if msg.startswith("Invalid enum value") and _literal_options(typ):
        return "must be one of: " + ", ".join(_literal_options(typ))
    if msg.startswith("Expected `str` matching regex"):
        # The schema's pattern means nothing to a person: say what the field's type
        # describes itself as (msgspec.Meta description), or only that it is off.
        described = _description(typ)
        return f"must be {described}" if described else "is not in the form it must have"
    if m := _BOUND.match(msg):
        return f"must be {_BOUNDS[m.group('op')]} {m.group('n')}"
    if msg.startswith("Invalid RFC3339 encoded datetime"):
        return "must be a date and time such as 2026-11-29T12:00:00Z"
    if msg == "Expected `datetime` with a timezone component":
        return "must say its time zone (Z or +01:00, say)"
    if m := _TYPE.match(msg):
        want, got = (_NAMES.get(t, t) for t in m.group("want", "got"))
        return f"must be {want}, not {got}"
    return msg


def _description(typ: Any) -> str | None:
    """The `msgspec.Meta(description=...)` of an Annotated type, if it has one."""
    if get_origin(typ) is not Annotated:
        return None
    for meta in get_args(typ)[1:]:
        if isinstance(meta, msgspec.Meta) and meta.description:
            return meta.description
    return None


def _literal_options(typ: Any) -> list[str]:
    if get_origin(typ) is Literal:
        return [str(a) for a in get_args(typ)]
    return []
