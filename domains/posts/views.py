"""The read side of posts: each post, and each author's posts (a summary's input)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from contracts.domain import EventMeta, Link, View
from domains.posts.events import PostDeleted, PostEdited, PostWritten

POST_EVENTS = (PostWritten, PostEdited, PostDeleted)


class PostRecord(msgspec.Struct, frozen=True):
    id: str
    author_id: str
    title: str
    body: str
    words: int
    written_at: datetime
    edited_at: datetime | None
    position: int


def words(text: str) -> int:
    """Words as a reader counts them: runs of characters between white space."""
    return len(text.split())


def post(record: PostRecord | None, event: Any, meta: EventMeta) -> PostRecord | None:
    if isinstance(event, PostWritten):
        return PostRecord(
            meta.aggregate_id,
            event.author_id,
            event.title,
            event.body,
            words(event.body),
            meta.at,
            None,
            meta.seq,
        )
    if isinstance(event, PostDeleted) or record is None:
        return None  # removed (its checkpoint stays)
    return msgspec.structs.replace(
        record,
        title=event.title,
        body=event.body,
        words=words(event.body),
        edited_at=meta.at,
        position=meta.seq,
    )


def by_author(event: Any, meta: EventMeta) -> str:
    """`<author>.<post>`: an author's posts are the records under `<author>.`."""
    return f"{event.author_id}.{meta.aggregate_id}"


def post_page(record: PostRecord) -> Link:
    return Link(f"/profile/{record.author_id}", "Open the profile")


POSTS = View("posts", PostRecord, POST_EVENTS, post, inline=True, page=post_page)
POSTS_BY_AUTHOR = View("posts_by_author", PostRecord, POST_EVENTS, post, key=by_author, inline=True)
