"""Posts, profiles and the user summary as pure functions; the summary's guard, by property."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.domain import Actor, Rejection
from contracts.views import Record
from domains.identity import aggregate as users
from domains.identity.commands import RegisterUser, UpdateProfile
from domains.identity.events import ProfileUpdated, UserRegistered
from domains.identity.views import UserRecord, user
from domains.posts import aggregate as posts
from domains.posts.commands import DeletePost, EditPost, Nothing, PostText, WritePost, delete, write
from domains.posts.events import PostDeleted, PostEdited, PostWritten
from domains.posts.summary import LatestPost, Summary, summarize, whose
from domains.posts.views import PostRecord, by_author, post, words
from domains.videos.events import VideoViewed
from domains.videos.views import Viewings, viewer_and_video
from reactor.views import replaces
from tests.domain_testing import given as fold
from tests.domain_testing import meta

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


# ---- deciders -------------------------------------------------------------------------------
WRITTEN = PostWritten("u1", "Hello", "a few words here")


def test_the_api_makes_the_sender_the_author() -> None:
    assert write(PostText(" Hello ", "a few words here"), Actor("u1")) == WritePost(
        "u1", "Hello", "a few words here"
    )
    assert delete(Nothing(), Actor("u1")) == DeletePost("u1")


@pytest.mark.parametrize(
    ("history", "command", "then"),
    [
        ([], WritePost("u1", "Hello", "a few words here"), [WRITTEN]),
        ([WRITTEN], EditPost("Hi", "other words", "u1"), [PostEdited("u1", "Hi", "other words")]),
        ([WRITTEN], EditPost("Hello", "a few words here", "u1"), []),  # nothing changes
        ([WRITTEN], DeletePost("u1"), [PostDeleted("u1")]),
    ],
)
def test_the_author_writes_edits_and_deletes(
    history: list[msgspec.Struct], command: Any, then: list[Any]
) -> None:
    assert posts.decide(fold(posts.evolve, *history), command) == then


@pytest.mark.parametrize(
    ("history", "command", "status"),
    [
        ([WRITTEN], EditPost("Mine", "now", "u2"), 403),
        ([WRITTEN], DeletePost("u2"), 403),
        ([WRITTEN, PostDeleted("u1")], EditPost("Again", "x", "u1"), 404),
        ([WRITTEN, PostDeleted("u1")], DeletePost("u1"), 404),
        ([], DeletePost("u1"), 404),
    ],
)
def test_others_and_deleted_posts_are_refused(
    history: list[msgspec.Struct], command: Any, status: int
) -> None:
    refused = posts.decide(fold(posts.evolve, *history), command)
    assert isinstance(refused, Rejection)
    assert refused.status == status


def test_a_profile_changes_the_name_and_bio_once() -> None:
    registered = UserRegistered("ada@example.org", "Ada", "$argon2id$x")
    state = fold(users.evolve, registered)
    change = UpdateProfile(" Ada L. ", "Engines")
    assert users.decide(state, change) == [ProfileUpdated("Ada L.", "Engines", "ada@example.org")]
    changed = fold(users.evolve, registered, ProfileUpdated("Ada L.", "Engines", "ada@example.org"))
    assert users.decide(changed, change) == []
    assert isinstance(users.decide(None, change), Rejection)
    assert users.decide(state, RegisterUser("ada@example.org", "$h", "Ada")) == []


def test_the_views_key_a_users_inputs_under_the_user() -> None:
    assert by_author(WRITTEN, meta(1, aggregate_id="p9")) == "u1.p9"
    assert viewer_and_video(VideoViewed("v1", "u1"), meta(1, aggregate_id="vid")) == "u1.vid"
    assert (
        viewer_and_video(VideoViewed("v1", None), meta(1, aggregate_id="vid")) is None
    )  # anonymous
    assert whose(WRITTEN, meta(1)) == "u1"
    assert whose(PostDeleted("u1"), meta(2)) == "u1"
    assert whose(ProfileUpdated("A", "", "a@x.org"), meta(3, aggregate_id="u7")) == "u7"
    assert whose(VideoViewed("v1", None), meta(4)) is None


def test_a_post_record_follows_its_edits_and_is_removed_when_deleted() -> None:
    record = post(None, WRITTEN, meta(1))
    assert record is not None
    assert (record.words, record.edited_at) == (4, None)
    edited = post(record, PostEdited("u1", "Hi", "two words"), meta(2, at=T0 + timedelta(1)))
    assert edited is not None
    assert (edited.title, edited.words, edited.position) == ("Hi", 2, 2)
    assert post(edited, PostDeleted("u1"), meta(3)) is None
    assert words("  tabs\tand\nnew lines  ") == 4


# ---- summarize, for every trigger ---------------------------------------------------------------
ADA = UserRecord("u1", "Ada", T0, 1)


def a_post(n: int, text: str = "one two three", title: str | None = None) -> PostRecord:
    at = T0 + timedelta(minutes=n)
    return PostRecord(f"p{n}", "u1", title or f"Post {n}", text, words(text), at, None, n + 1)


def test_a_new_user_has_an_empty_summary() -> None:
    assert summarize(ADA, [], []) == Summary("u1", "Ada", 0, None, None, 0, 0)


def test_no_user_no_summary() -> None:
    assert summarize(None, [a_post(1)], []) is None


def test_a_profile_change_renames_the_summary() -> None:
    renamed = msgspec.structs.replace(ADA, display_name="Ada L.", position=9)
    assert summarize(renamed, [a_post(1)], []).display_name == "Ada L."  # type: ignore[union-attr]


def test_posts_written_give_count_words_first_and_latest() -> None:
    summary = summarize(ADA, [a_post(2, "a b"), a_post(1, "c d e"), a_post(3, "f")], [])
    assert summary is not None
    assert (summary.post_count, summary.total_words) == (3, 6)
    assert summary.first_post_at == T0 + timedelta(minutes=1)
    assert summary.latest_post == LatestPost("p3", "Post 3", T0 + timedelta(minutes=3))


def test_an_edited_post_counts_its_new_words_and_title() -> None:
    edited = msgspec.structs.replace(a_post(2), title="Edited", body="x y z w", words=4)
    summary = summarize(ADA, [a_post(1), edited], [])
    assert summary is not None
    assert summary.total_words == 3 + 4
    assert summary.latest_post == LatestPost("p2", "Edited", T0 + timedelta(minutes=2))


def test_a_deleted_post_is_gone_from_the_summary() -> None:
    # The posts view removes a deleted post's record, so it is not among the inputs.
    assert post(a_post(2), PostDeleted("u1"), meta(9, aggregate_id="p2")) is None
    records = [
        r for r in (a_post(1), post(a_post(2), PostDeleted("u1"), meta(9, aggregate_id="p2"))) if r
    ]
    summary = summarize(ADA, records, [])
    assert summary is not None
    assert (summary.post_count, summary.total_words) == (1, 3)
    assert summary.latest_post is not None
    assert summary.latest_post.id == "p1"


def test_viewings_count_as_videos_watched() -> None:
    summary = summarize(ADA, [], [Viewings("v1", 2, 5), Viewings("v2", 1, 6)])
    assert summary is not None
    assert summary.videos_watched == 3


def test_the_user_view_follows_registration_and_profile() -> None:
    record = user(None, UserRegistered("a@x.org", "Ada", "$h"), meta(1, aggregate_id="u1"))
    record = user(
        record, ProfileUpdated("Ada L.", "Engines", "a@x.org"), meta(4, aggregate_id="u1")
    )
    assert (record.display_name, record.bio, record.position) == ("Ada L.", "Engines", 4)


# ---- properties -----------------------------------------------------------------------------
texts = st.text(alphabet="ab \n", min_size=1, max_size=30)


@st.composite
def histories(draw: st.DrawFn) -> list[tuple[str, int, str]]:
    """A user's changes in the order they happened: (what, post number, text)."""
    ops = st.tuples(
        st.sampled_from(["write", "edit", "delete", "view", "rename"]), st.integers(0, 5), texts
    )
    return draw(st.lists(ops, min_size=1, max_size=25))


def snapshots(
    history: list[tuple[str, int, str]],
) -> list[tuple[Any, list[PostRecord], list[Viewings], int]]:
    """The inputs after each change (user, posts, viewings), with the sum of their checkpoints.

    Records are kept as the views keep them: a removed post keeps its
    checkpoint (it counts in the sum, not among the posts).
    """
    user_record = ADA
    live: dict[str, PostRecord] = {}
    gone: dict[str, int] = {}
    views: dict[str, Viewings] = {}
    found = []
    for seq, (what, n, text) in enumerate(history, start=2):
        key = f"p{n}"
        if what == "write" and key not in live and key not in gone:
            at = T0 + timedelta(seconds=seq)
            live[key] = PostRecord(key, "u1", f"T{n}", text, words(text), at, None, seq)
        elif what == "edit" and key in live:
            live[key] = msgspec.structs.replace(
                live[key], body=text, words=words(text), position=seq
            )
        elif what == "delete" and key in live:
            del live[key]
            gone[key] = seq
        elif what == "view":
            old = views.get(key)
            views[key] = Viewings(key, (old.count if old else 0) + 1, seq)
        elif what == "rename":
            user_record = msgspec.structs.replace(user_record, display_name=text, position=seq)
        else:
            continue
        checkpoints = user_record.position + sum(p.position for p in live.values())
        checkpoints += sum(gone.values()) + sum(v.position for v in views.values())
        found.append((user_record, list(live.values()), list(views.values()), checkpoints))
    return found


@settings(max_examples=200, deadline=None)
@given(histories(), st.randoms(use_true_random=False))
def test_any_order_of_arrival_ends_with_the_summary_of_the_final_inputs(
    history: list[tuple[str, int, str]], rnd: random.Random
) -> None:
    made = snapshots(history)
    if not made:
        return
    records = [
        Record(0, msgspec.Raw(msgspec.json.encode(summarize(u, p, v))), inputs=total)
        for u, p, v, total in made
    ]
    rnd.shuffle(records)  # the writes land in any order (reactors, retries, a slow one)
    stored: Record | None = None
    for record in records:
        if replaces(stored, record):
            stored = record
    user_record, final_posts, final_views, _ = made[-1]
    assert stored is not None
    assert bytes(stored.state) == msgspec.json.encode(
        summarize(user_record, final_posts, final_views)
    )


@settings(max_examples=200, deadline=None)
@given(histories(), st.randoms(use_true_random=False))
def test_the_summary_does_not_depend_on_the_order_inputs_are_listed(
    history: list[tuple[str, int, str]], rnd: random.Random
) -> None:
    for user_record, live, views, _ in snapshots(history):
        shuffled_posts, shuffled_views = live[:], views[:]
        rnd.shuffle(shuffled_posts)
        rnd.shuffle(shuffled_views)
        assert summarize(user_record, shuffled_posts, shuffled_views) == summarize(
            user_record, live, views
        )
