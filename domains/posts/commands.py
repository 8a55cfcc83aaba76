"""What may be asked of posts. The browser sends the forms; the API adds who sends them."""

from __future__ import annotations

from typing import Annotated

import msgspec

from contracts.domain import Actor, some_text

Title = Annotated[str, some_text(200)]
Body = Annotated[str, some_text(20_000)]
UserId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class PostText(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A post's title and body (to write one, or to edit yours)."""

    title: Title
    body: Body


class Nothing(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An empty body: `{}`."""


class WritePost(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    author_id: UserId
    title: Title
    body: Body


class EditPost(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    title: Title
    body: Body
    by: UserId


class DeletePost(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    by: UserId


def write(form: PostText, actor: Actor) -> WritePost:
    assert actor.user_id is not None  # access "user"
    return WritePost(actor.user_id, form.title.strip(), form.body)


def edit(form: PostText, actor: Actor) -> EditPost:
    assert actor.user_id is not None
    return EditPost(form.title.strip(), form.body, actor.user_id)


def delete(form: Nothing, actor: Actor) -> DeletePost:
    assert actor.user_id is not None
    return DeletePost(actor.user_id)
