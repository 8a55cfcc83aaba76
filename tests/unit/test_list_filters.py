"""A list read's filters: each field's value as the query names it."""

from __future__ import annotations

from typing import Literal

import msgspec
import pytest

from api.reads import as_query, filter_values, record_matches
from contracts.views import Record


class Task(msgspec.Struct, frozen=True):
    title: str
    done: bool
    size: int
    state: Literal["open", "closed"]
    owner: str | None = None


def record(task: Task) -> Record:
    return Record(1, msgspec.Raw(msgspec.json.encode(task)))


@pytest.mark.parametrize(
    ("query", "matches"),
    [
        # Python's str() made a bool `True`: ?done=true matched nothing, ?done=True did.
        ({"done": "true"}, True),
        ({"done": "True"}, False),
        ({"done": "false"}, False),
        ({"size": "3"}, True),
        ({"state": "open"}, True),
        ({"owner": "null"}, True),
        ({"title": "Tea", "done": "true"}, True),
        ({"title": "tea"}, False),
    ],
)
def test_a_filter_compares_the_field_as_the_query_writes_it(
    query: dict[str, str], matches: bool
) -> None:
    assert record_matches(record(Task("Tea", True, 3, "open")), query) is matches


def test_a_filter_of_a_fixed_set_of_values_lists_them_as_json_writes_them() -> None:
    assert filter_values(Task, "done") == ["true", "false"]
    assert sorted(filter_values(Task, "state") or []) == ["closed", "open"]
    assert filter_values(Task, "title") is None
    assert [as_query(v) for v in ("x", 1, 1.5, None, False)] == ["x", "1", "1.5", "null", "false"]
