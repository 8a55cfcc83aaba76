"""The registry: what it derives from the domains, and what it refuses."""

from __future__ import annotations

import dataclasses

import msgspec
import pytest
from openapi_spec_validator import validate

from api.openapi import document
from contracts.domain import (
    Aggregator,
    CommandSpec,
    Domain,
    GetRead,
    ListRead,
    Owner,
    Read,
    Rejection,
    SummaryRead,
    Unique,
    View,
)
from contracts.registry import Registry, RegistryError
from domains import DOMAINS, chat, identity
from domains.chat.events import MessagesPosted, Posted
from tests.domains import memos, notes


def test_the_real_domains_fit_together() -> None:
    registry = Registry(DOMAINS)
    assert "CreateLocation" in registry.commands
    assert registry.resource_url("locations", "abc") == "/api/locations/abc"
    async_views = [v.name for v in registry.async_views()]  # a domain added adds its own
    assert {"location_stats", "account_ledger", "home_totals", "user_summaries"} <= set(async_views)
    assert not {"locations", "accounts", "shipments"} & set(async_views)  # inline ones
    assert registry.event_filter(registry.views["location_stats"].events) == ["ev.location.>"]
    assert registry.sign_in is not None
    assert registry.sign_in.view == "credentials"
    assert [box.aggregate for box in registry.mailboxes] == ["email"]


def test_a_form_without_its_intake_is_refused() -> None:
    spec = dataclasses.replace(memos.DOMAIN.commands[0], form=memos.StampMemo)
    domain = dataclasses.replace(memos.DOMAIN, commands=(spec, *memos.DOMAIN.commands[1:]))
    with pytest.raises(RegistryError, match="a form and its intake go together"):
        Registry([domain])


def test_a_secret_must_be_a_field_of_the_form() -> None:
    spec = dataclasses.replace(
        memos.DOMAIN.commands[0],
        form=memos.StampMemo,
        intake=lambda form, actor: form,
        secrets=("password",),
    )
    domain = dataclasses.replace(memos.DOMAIN, commands=(spec, *memos.DOMAIN.commands[1:]))
    with pytest.raises(RegistryError, match="secret 'password' is not a form field"):
        Registry([domain])


def test_a_command_for_users_needs_a_domain_to_sign_in_against() -> None:
    spec = dataclasses.replace(memos.DOMAIN.commands[0], access="user")
    domain = dataclasses.replace(memos.DOMAIN, commands=(spec, *memos.DOMAIN.commands[1:]))
    with pytest.raises(RegistryError, match="needs a domain with SignIn"):
        Registry([domain])


def test_an_owner_check_needs_an_inline_view_with_the_field() -> None:
    stamp = next(s for s in memos.DOMAIN.commands if s.name == "StampMemo")
    others = tuple(s for s in memos.DOMAIN.commands if s is not stamp)
    for owner, message in (
        (Owner("memo_folders"), "must be an inline view"),
        (Owner("memos", field="nobody"), "'nobody' is not a field of memos"),
    ):
        spec = dataclasses.replace(stamp, access="user", owner=owner)
        domain = dataclasses.replace(memos.DOMAIN, commands=(spec, *others))
        with pytest.raises(RegistryError, match=message):
            Registry([domain, *DOMAINS])


def test_a_second_sign_in_is_refused() -> None:
    twin = dataclasses.replace(notes.DOMAIN, sign_in=identity.DOMAIN.sign_in)
    with pytest.raises(RegistryError, match="a second SignIn"):
        Registry([*DOMAINS, twin])


def test_a_name_declared_twice_is_refused() -> None:
    with pytest.raises(RegistryError, match="declared twice"):
        Registry([notes.DOMAIN, dataclasses.replace(notes.DOMAIN, name="notes2")])


def test_a_resource_must_be_an_inline_view() -> None:
    spec = dataclasses.replace(memos.DOMAIN.commands[0], resource="memo_folders")
    domain = dataclasses.replace(memos.DOMAIN, commands=(spec, *memos.DOMAIN.commands[1:]))
    with pytest.raises(RegistryError, match="must be an inline view"):
        Registry([domain])


def test_a_view_of_an_unknown_event_is_refused() -> None:
    class Stray(msgspec.Struct):
        pass

    view = View("strays", state=Stray, events=(Stray,), apply=lambda r, e, m: r)
    with pytest.raises(RegistryError, match="unknown event Stray"):
        Registry([dataclasses.replace(notes.DOMAIN, views=(*notes.DOMAIN.views, view))])


def test_a_list_under_a_record_names_the_records_view() -> None:
    under = ListRead("memos", "memos", action="all")
    with pytest.raises(RegistryError, match="an action and a parent go together"):
        Registry([dataclasses.replace(memos.DOMAIN, reads=(*memos.DOMAIN.reads, under))])
    stray = ListRead("memos", "memos", action="all", parent="nowhere")
    with pytest.raises(RegistryError, match="unknown parent 'nowhere'"):
        Registry([dataclasses.replace(memos.DOMAIN, reads=(*memos.DOMAIN.reads, stray))])
    assert ListRead("memos", "memos", action="all", parent="memos").path == "/api/memos/{id}/all"
    ranked = ListRead("chat/channels", chat.CHANNELS.name, action="all", parent=chat.CHANNELS.name)
    with pytest.raises(RegistryError, match="a ranked aggregator has no parent"):
        Registry([dataclasses.replace(chat.DOMAIN, reads=(*chat.DOMAIN.reads, ranked))])


def test_two_commands_on_one_route_are_refused() -> None:
    twin = CommandSpec(memos.StampMemo, aggregate="memo", collection="memos")
    domain = dataclasses.replace(memos.DOMAIN, commands=(*memos.DOMAIN.commands, twin))
    with pytest.raises(RegistryError):
        Registry([domain])


def test_an_old_event_version_is_upcast_on_read() -> None:
    registry = Registry([memos.DOMAIN])
    filed = registry.events["MemoFiled"]
    assert filed.decode(b'{"folder":"inbox"}', version=1) == memos.MemoFiled("inbox", "normal")
    assert filed.decode(b'{"folder":"x","priority":"high"}', version=2) == memos.MemoFiled(
        "x", "high"
    )


def test_the_openapi_document_is_valid_and_lists_every_route() -> None:
    registry = Registry([*DOMAINS, notes.DOMAIN, memos.DOMAIN])
    doc = document(registry)
    validate(doc)  # raises if it is not valid OpenAPI 3.1
    assert doc["openapi"] == "3.1.0"
    paths = doc["paths"]
    assert paths["/api/locations"]["post"]["requestBody"]["content"]["application/json"][
        "schema"
    ] == {"$ref": "#/components/schemas/CreateLocation"}
    assert "201" in paths["/api/locations"]["post"]["responses"]
    assert "200" in paths["/api/memos/{id}/stamp"]["post"]["responses"]
    for path in ("/api/locations", "/api/locations/{id}", "/api/locations/stats", "/api/notes"):
        assert "get" in paths[path], path
    assert "get" in paths["/api/memos/{id}/live"]
    schemas = doc["components"]["schemas"]
    assert schemas["CreateLocation"]["properties"]["name"]["maxLength"] == 100
    assert {"Problem", "Notice", "LocationRecord", "Stats"} <= set(schemas)
    # An aggregator is read like a view; a read may name its path parameter.
    one = paths["/api/chat/channels/{channel}"]["get"]
    assert [p["name"] for p in one["parameters"]] == ["channel", "min_position"]
    assert "get" in paths["/api/chat/channels/{channel}/live"]
    (cursor,) = [
        p for p in paths["/api/chat/channels"]["get"]["parameters"] if p["name"] == "cursor"
    ]
    assert cursor["schema"]["pattern"] == r"^-?[0-9]{1,18}\.[0-9A-Za-z_-]{1,64}$"
    assert "1048576 bytes" in paths["/api/chat/messages"]["post"]["description"]
    # A list under a record: its id, then the list's parameters; 404 for an unknown one.
    ledger = paths["/api/accounts/{id}/ledger"]["get"]
    assert [p["name"] for p in ledger["parameters"]][:2] == ["id", "limit"]
    assert "404" in ledger["responses"]
    assert schemas["ChatMessage"]["properties"]["text"]["maxLength"] == 500


def test_the_openapi_document_shows_forms_secrets_and_who_may_send() -> None:
    doc = document(Registry(DOMAINS))
    paths, schemas = doc["paths"], doc["components"]["schemas"]
    users = paths["/api/users"]["post"]
    assert users["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Registration"
    }
    password = schemas["Registration"]["properties"]["password"]
    assert password["writeOnly"] is True
    assert password["format"] == "password"
    assert "password_hash" not in schemas["Registration"]["properties"]
    assert "401" in paths["/api/videos"]["post"]["responses"]
    assert {"401", "403", "404"} <= set(paths["/api/videos/{id}/rename"]["post"]["responses"])
    assert "401" not in paths["/api/videos/{id}/views"]["post"]["responses"]
    assert set(paths["/api/sessions/current"]) == {"get", "delete"}
    assert schemas["SignInForm"]["properties"]["password"]["writeOnly"] is True


def test_an_aggregator_folds_keyed_events_only() -> None:
    aggregator = Aggregator(
        "note_counts", state=notes.Note, events=(notes.NoteWritten,), apply=lambda *a: a[:2]
    )
    with pytest.raises(RegistryError, match="not a keyed event"):
        Registry([dataclasses.replace(notes.DOMAIN, aggregators=(aggregator,))])


def test_an_aggregator_and_a_view_may_not_share_a_bucket() -> None:
    domain = dataclasses.replace(
        chat.DOMAIN, aggregators=(dataclasses.replace(chat.CHANNELS, name="notes"),)
    )
    with pytest.raises(RegistryError, match="declared twice"):
        Registry([notes.DOMAIN, domain])


def test_an_inline_view_of_a_keyed_event_is_refused() -> None:
    view = View(
        "posts", state=Posted, events=(MessagesPosted,), apply=lambda r, e, m: r, inline=True
    )
    with pytest.raises(RegistryError, match="is not inline"):
        Registry([dataclasses.replace(chat.DOMAIN, views=(view,))])


def test_an_aggregator_reads_its_keyed_events_by_partition() -> None:
    registry = Registry(DOMAINS)
    channels = registry.aggregators["chat_channels"]
    assert registry.partition_filter(channels, 3) == ["ev.chat.3.*"]
    assert registry.partition_filter(channels) == ["ev.chat.*.*"]
    assert registry.readable("chat_channels") is channels
    assert "chat_channels" in registry.buckets


def _with_reads(*reads: Read) -> Domain:
    return dataclasses.replace(memos.DOMAIN, reads=(*memos.DOMAIN.reads, *reads))


@pytest.mark.parametrize(
    ("domains", "message"),
    [
        # A read on another domain's route was dropped silently: the first route won.
        (
            [memos.DOMAIN, dataclasses.replace(notes.DOMAIN, reads=(GetRead("memos", "notes"),))],
            r"read /api/memos/\{id\} \(view notes\) and read /api/memos/\{id\} \(view memos\)"
            r" share the route GET /api/memos/\{id\}",
        ),
        (
            [_with_reads(GetRead("memos", "memo_folders", param="folder"))],
            r"share the route GET /api/memos/\{folder\}",
        ),
        ([_with_reads(ListRead("commands", "memos"))], r"/api/commands is taken"),
        ([_with_reads(ListRead("My Memos", "memos"))], r"'My Memos' must match"),
        (
            [_with_reads(SummaryRead("memos/all", "memo_folders", memos.folders, memos.Folders))],
            r"a path /api/<segment>",
        ),
        ([memos.DOMAIN, memos.DOMAIN], r"domain 'memos' is declared twice"),
    ],
)
def test_routes_that_clash_or_cannot_be_reached_are_refused(
    domains: list[Domain], message: str
) -> None:
    with pytest.raises(RegistryError, match=message):
        Registry(domains)


def test_two_commands_on_one_route_are_named() -> None:
    spec = dataclasses.replace(memos.DOMAIN.commands[1], action=None, type=memos.StampMemo)
    domain = dataclasses.replace(memos.DOMAIN, commands=(memos.DOMAIN.commands[0], spec))
    with pytest.raises(
        RegistryError,
        match="command StampMemo and command WriteMemo share the route POST /api/memos",
    ):
        Registry([domain])


class Loose(msgspec.Struct, frozen=True):
    text: str


def test_a_command_that_would_drop_unknown_fields_is_refused() -> None:
    spec = dataclasses.replace(memos.DOMAIN.commands[0], type=Loose)
    domain = dataclasses.replace(memos.DOMAIN, commands=(spec, *memos.DOMAIN.commands[1:]))
    with pytest.raises(RegistryError, match="Loose needs forbid_unknown_fields=True"):
        Registry([domain])


@pytest.mark.parametrize(
    ("unique", "message"),
    [
        # Found only at the first command, retried until dead-lettered as a 500.
        (
            Unique("memo text", lambda c: c.text, lambda c: Rejection(409, "Taken", "Taken.")),
            r"unique scope 'memo text' must match",
        ),
        (
            Unique("memo-text", lambda c: c.text, Rejection(409, "Taken", "Taken.")),  # type: ignore[arg-type]
            r"Unique's value and rejection are functions",
        ),
    ],
)
def test_a_unique_value_is_checked_at_start(unique: Unique, message: str) -> None:
    spec = dataclasses.replace(memos.DOMAIN.commands[0], unique=unique)
    domain = dataclasses.replace(memos.DOMAIN, commands=(spec, *memos.DOMAIN.commands[1:]))
    with pytest.raises(RegistryError, match=message):
        Registry([domain])
