"""A post: written by its author, edited or deleted by its author only."""

from __future__ import annotations

from typing import Any

import msgspec

from contracts.domain import EventMeta, Rejection
from domains.posts.commands import DeletePost, EditPost, WritePost
from domains.posts.events import PostDeleted, PostEdited, PostWritten


class Post(msgspec.Struct, frozen=True):
    author_id: str
    title: str
    body: str
    deleted: bool = False


def decide(state: Post | None, command: Any) -> list[msgspec.Struct] | Rejection:
    if isinstance(command, WritePost):
        return (
            []
            if state is not None
            else [PostWritten(command.author_id, command.title, command.body)]
        )
    if state is None or state.deleted:
        return Rejection(404, "No such post", "There is no post with this id.", slug="no-post")
    if command.by != state.author_id:
        return Rejection(
            403, "Not your post", "Only its author may change a post.", slug="not-owner"
        )
    if isinstance(command, DeletePost):
        return [PostDeleted(state.author_id)]
    assert isinstance(command, EditPost)
    if (command.title, command.body) == (state.title, state.body):
        return []
    return [PostEdited(state.author_id, command.title, command.body)]


def evolve(state: Post | None, event: Any, meta: EventMeta) -> Post:
    if isinstance(event, PostWritten):
        return Post(event.author_id, event.title, event.body)
    assert state is not None
    if isinstance(event, PostEdited):
        return msgspec.structs.replace(state, title=event.title, body=event.body)
    return msgspec.structs.replace(state, deleted=True)
