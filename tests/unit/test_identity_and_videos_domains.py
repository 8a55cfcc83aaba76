"""Identity, the outbox and videos as pure functions: given events, when a command, then events."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from contracts.domain import Actor, Rejection
from domains.identity import aggregate as users
from domains.identity.commands import (
    RegisterUser,
    Registration,
    UpdateProfile,
    check_display_name,
    register,
)
from domains.identity.events import UserRegistered
from domains.identity.views import credentials, credentials_key
from domains.identity.welcome import welcome
from domains.outbox import aggregate as emails
from domains.outbox.commands import ConfirmEmailSent, GiveUpEmail, SendEmail, StartEmailHandover
from domains.outbox.events import EmailFailed, EmailHandoverStarted, EmailRequested, EmailSent
from domains.videos import aggregate as videos
from domains.videos.commands import (
    PublishVideo,
    RecordViewing,
    RenameVideo,
    VideoDetails,
    Viewing,
    publish,
    view,
)
from domains.videos.events import VideoNameRejected, VideoPublished, VideoRenamed, VideoViewed
from domains.videos.views import HOME, HOME_SHARDS, Home, home, home_summary, video
from tests.domain_testing import given, meta

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


# ---- identity -------------------------------------------------------------------------------
REGISTERED = UserRegistered("Ada@Example.org", "Ada", "$argon2id$hash")


def test_a_registration_becomes_a_command_with_the_hash_in_place_of_the_password() -> None:
    form = Registration(" Ada@Example.org ", "$argon2id$hash", " Ada ")  # as the API hands it
    assert register(form, Actor(None)) == RegisterUser("Ada@Example.org", "$argon2id$hash", "Ada")
    assert "password" not in RegisterUser.__struct_fields__


def test_a_user_registers_once() -> None:
    command = RegisterUser("Ada@Example.org", "$argon2id$hash", "Ada")
    assert users.decide(None, command) == [REGISTERED]
    assert users.decide(given(users.evolve, REGISTERED), command) == []  # a redelivery


def test_credentials_are_found_by_the_email_whatever_its_case() -> None:
    assert credentials_key("ada@example.org") == credentials_key(" ADA@Example.ORG")
    assert credentials_key("ada@example.org") != credentials_key("bob@example.org")
    record = credentials(None, REGISTERED, meta(7, REGISTERED, "u1"))
    assert (record.user_id, record.password_hash, record.position) == ("u1", "$argon2id$hash", 7)


def test_the_welcome_policy_asks_for_one_email_per_address() -> None:
    [issue] = welcome(REGISTERED, meta(1, REGISTERED, "u1"))
    assert isinstance(issue.command, SendEmail)
    assert issue.command.to == "Ada@Example.org"
    assert "Ada" in issue.command.subject
    assert "$argon2id" not in issue.command.body
    assert issue.aggregate_id == emails.email_id("welcome", "ada@example.org")
    [again] = welcome(REGISTERED, meta(9, REGISTERED, "u2"))  # another user, same address
    assert again.aggregate_id == issue.aggregate_id


# ---- the outbox -----------------------------------------------------------------------------
REQUESTED = EmailRequested("ada@example.org", "Welcome", "Hello")


@pytest.mark.parametrize(
    ("history", "command", "then"),
    [
        ([], SendEmail("ada@example.org", "Welcome", "Hello"), [REQUESTED]),
        ([REQUESTED], SendEmail("ada@example.org", "Welcome", "Again"), []),  # once, for ever
        ([REQUESTED], StartEmailHandover(), [EmailHandoverStarted()]),
        ([REQUESTED, EmailHandoverStarted()], ConfirmEmailSent(), [EmailSent()]),
        ([REQUESTED, EmailHandoverStarted(), EmailSent()], ConfirmEmailSent(), []),
        ([REQUESTED], GiveUpEmail("down"), [EmailFailed("down")]),
        ([REQUESTED, EmailHandoverStarted()], GiveUpEmail("lost"), [EmailFailed("lost")]),
        ([REQUESTED, EmailFailed("down")], GiveUpEmail("again"), []),
    ],
)
def test_an_email_goes_requested_handing_over_then_sent_or_failed(
    history: list[msgspec.Struct], command: Any, then: list[Any]
) -> None:
    assert emails.decide(given(emails.evolve, *history), command) == then


@pytest.mark.parametrize(
    ("history", "command"),
    [
        ([REQUESTED, EmailHandoverStarted()], StartEmailHandover()),  # never handed over twice
        ([REQUESTED, EmailHandoverStarted(), EmailSent()], StartEmailHandover()),
        ([REQUESTED, EmailFailed("down")], StartEmailHandover()),
        ([REQUESTED], ConfirmEmailSent()),
        ([REQUESTED, EmailHandoverStarted(), EmailSent()], GiveUpEmail("late")),
    ],
)
def test_an_email_refuses_what_its_state_does_not_allow(
    history: list[msgspec.Struct], command: Any
) -> None:
    refused = emails.decide(given(emails.evolve, *history), command)
    assert isinstance(refused, Rejection)
    assert refused.status == 409


def test_an_email_is_due_until_handed_over() -> None:
    assert emails.status(None) == "due"
    assert emails.status(given(emails.evolve, REQUESTED)) == "due"
    assert emails.status(given(emails.evolve, REQUESTED, EmailHandoverStarted())) == "handing_over"
    assert emails.status(given(emails.evolve, REQUESTED, EmailFailed("x"))) == "failed"


# ---- videos ---------------------------------------------------------------------------------
PUBLISHED = VideoPublished("u1", "Cats", "https://example.org/cats.mp4", "")


def when_video(history: list[msgspec.Struct], command: Any) -> Any:
    return videos.decide(given(videos.evolve, *history), command)


def test_the_api_adds_who_publishes_and_who_watches() -> None:
    details = VideoDetails("Cats", "https://example.org/cats.mp4")
    assert publish(details, Actor("u1")) == PublishVideo(
        "u1", "Cats", "https://example.org/cats.mp4"
    )
    assert view(Viewing("v1"), Actor(None)) == RecordViewing("v1", None)
    assert view(Viewing("v1"), Actor("u2")) == RecordViewing("v1", "u2")


def test_a_video_is_published_by_its_owner() -> None:
    command = PublishVideo("u1", " Cats ", "https://example.org/cats.mp4")
    assert when_video([], command) == [PUBLISHED]


@pytest.mark.parametrize(
    "title", ["!!!", "   ", "Cats\x00", "Cats\n", "Cats\u202etxt.exe", "Cats\U000e0068\U000e0069"]
)
def test_a_title_without_a_letter_or_with_control_characters_is_rejected(title: str) -> None:
    refused = when_video([], PublishVideo("u1", title, "https://example.org/v"))
    assert isinstance(refused, Rejection)
    assert (refused.status, refused.record) == (422, ())  # nothing to record: no video
    renamed = when_video([PUBLISHED], RenameVideo(title, "u1"))
    assert isinstance(renamed, Rejection)
    assert renamed.status == 422
    assert renamed.title == "Video name rejected"
    [recorded] = renamed.record
    assert isinstance(recorded, VideoNameRejected)
    assert (recorded.title, recorded.by) == (title, "u1")
    assert renamed.errors is not None
    assert renamed.errors[0].loc == "$.title"


@pytest.mark.parametrize(
    "title",
    [
        "Dev 👩\u200d💻 tips",
        "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",
        "Scotland 🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",
    ],
    ids=["emoji-sequence", "zero-width-non-joiner", "subdivision-flag"],
)
def test_a_title_with_the_format_characters_text_needs_is_taken(title: str) -> None:
    published = when_video([], PublishVideo("u1", title, "https://example.org/v"))
    assert published == [VideoPublished("u1", title, "https://example.org/v", "")]


def test_a_display_name_is_one_line_without_control_characters() -> None:
    now = datetime(2026, 11, 29, tzinfo=UTC)
    bad = "Ada\r\nBcc: x@example.org"  # the welcome email's subject holds the name
    for form in (Registration("a@b.cd", "12345678", bad), UpdateProfile(bad)):
        [error] = check_display_name(form, now)
        assert (error.loc, error.msg) == ("$.display_name", "must not contain control characters")
    assert check_display_name(UpdateProfile("Zoë 👩\u200d💻", "two\nlines of bio"), now) == []


def test_only_the_owner_renames() -> None:
    assert when_video([PUBLISHED], RenameVideo("Dogs", "u1")) == [VideoRenamed("Dogs", "u1")]
    assert when_video([PUBLISHED], RenameVideo("Cats", "u1")) == []  # the same title
    refused = when_video([PUBLISHED], RenameVideo("Dogs", "u2"))
    assert isinstance(refused, Rejection)
    assert refused.status == 403


def test_a_viewing_is_counted_once_whatever_the_retries() -> None:
    first = when_video([PUBLISHED], RecordViewing("v1", "u2"))
    assert first == [VideoViewed("v1", "u2")]
    assert when_video([PUBLISHED, *first], RecordViewing("v1", "u2")) == []
    assert when_video([PUBLISHED, *first], RecordViewing("v2", None)) == [VideoViewed("v2", None)]
    missing = when_video([], RecordViewing("v1", None))
    assert isinstance(missing, Rejection)
    assert missing.status == 404


def test_the_video_view_counts_viewings_and_the_home_view_sums_them() -> None:
    events = [
        PUBLISHED,
        VideoViewed("v1", None),
        VideoRenamed("Dogs", "u1"),
        VideoViewed("v2", "u2"),
    ]
    record = given(video, *events)
    assert (record.title, record.views, record.position) == ("Dogs", 2, 4)
    totals = given(home, PUBLISHED, VideoViewed("v1", None), VideoViewed("v2", None))
    assert totals == Home(videos_watched=2, videos_published=1, per_video={"a1": 2}, position=3)


def test_the_home_totals_are_shared_out_by_video_and_added_up() -> None:
    """Each video's totals live in one of HOME_SHARDS records: a viewing rewrites one
    small record, not one holding every video (past about 100,000 videos that one
    no longer fitted in a NATS message, and every viewing copied all of it)."""
    ids = [f"{n:032x}" for n in range(100_000)]
    shards: dict[str, Home] = {}
    for seq, video_id in enumerate(ids, start=1):
        at = meta(seq, PUBLISHED, video_id)
        key = HOME.key(PUBLISHED, at)
        assert key is not None
        assert key == HOME.key(VideoViewed("v", None), at)  # its viewings go to its share
        shards[key] = home(shards.get(key), PUBLISHED, at)
    assert len(shards) == HOME_SHARDS
    largest = max(len(msgspec.json.encode(record)) for record in shards.values())
    assert largest < 100_000  # the whole was 3.7 MB
    viewed = meta(len(ids) + 1, VideoViewed("v", None), ids[7])
    key = HOME.key(VideoViewed("v", None), viewed)
    assert key is not None
    shards[key] = home(shards[key], VideoViewed("v", None), viewed)
    total = home_summary(list(shards.values()))
    assert (total.videos_published, total.videos_watched) == (100_000, 1)
    assert len(total.per_video) == 100_000
    assert total.per_video[ids[7]] == 1
    assert total.position == len(ids) + 1
    assert home_summary([]) == Home()
