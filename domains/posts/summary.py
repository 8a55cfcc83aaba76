"""A user's summary: made again from all of the user's inputs, whatever changed.

One pure function, `summarize(user, posts, viewings)`, whatever the trigger
(a profile change, a post written, edited or deleted, a video watched): the
machinery loads every current input of the user from the views and calls it
(`View.compute`). No trigger mutates the summary its own way, so there is one
code path to test and no order of arrival to get wrong.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from contracts.domain import EventMeta, Input, View
from domains.identity.events import ProfileUpdated, UserRegistered
from domains.identity.views import USERS, UserRecord
from domains.posts.views import POST_EVENTS, POSTS_BY_AUTHOR, PostRecord
from domains.videos.events import VideoViewed
from domains.videos.views import VIEWINGS, Viewings


class LatestPost(msgspec.Struct, frozen=True):
    id: str
    title: str
    at: datetime


class Summary(msgspec.Struct, frozen=True):
    """`GET /api/users/{id}/summary`."""

    user_id: str
    display_name: str
    post_count: int
    latest_post: LatestPost | None
    first_post_at: datetime | None
    total_words: int  # in the bodies of the user's posts
    videos_watched: int  # viewings recorded while signed in as the user
    position: int = 0  # the last event the summary reflects (set by the machinery)


def summarize(
    user: UserRecord | None, posts: list[PostRecord], viewings: list[Viewings]
) -> Summary | None:
    if user is None:
        return None  # not registered (yet): nothing to summarize
    ordered = sorted(posts, key=lambda p: (p.written_at, p.id))
    latest = ordered[-1] if ordered else None
    return Summary(
        user_id=user.id,
        display_name=user.display_name,
        post_count=len(ordered),
        latest_post=None
        if latest is None
        else LatestPost(latest.id, latest.title, latest.written_at),
        first_post_at=ordered[0].written_at if ordered else None,
        total_words=sum(p.words for p in ordered),
        videos_watched=sum(v.count for v in viewings),
    )


def whose(event: Any, meta: EventMeta) -> str | None:
    """The user whose summary an event changes."""
    if isinstance(event, (UserRegistered, ProfileUpdated)):
        return meta.aggregate_id
    if isinstance(event, VideoViewed):
        return event.viewer_id  # None: watched without signing in
    author: str = event.author_id
    return author


SUMMARIES = View(
    "user_summaries",
    Summary,
    (UserRegistered, ProfileUpdated, *POST_EVENTS, VideoViewed),
    key=whose,
    inputs=(
        Input("user", USERS),
        Input("posts", POSTS_BY_AUTHOR, many=True),
        Input("viewings", VIEWINGS, many=True),
    ),
    compute=summarize,
    followable=True,
)
