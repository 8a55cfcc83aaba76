"""What may be asked of videos. The browser sends the forms; the API adds who sends them."""

from __future__ import annotations

from typing import Annotated

import msgspec

from contracts.domain import Actor

Title = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Url = Annotated[
    str,
    msgspec.Meta(
        min_length=8,
        max_length=2000,
        pattern=r"^https?://\S+$",
        description="a web address starting with http:// or https://",
    ),
]
ViewingId = Annotated[
    str,
    msgspec.Meta(pattern=r"^[0-9A-Za-z_-]{1,64}$", description="1 to 64 letters, digits, - or _"),
]
UserId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class VideoDetails(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Publish a video (signed in: you own it)."""

    title: Title
    url: Url
    description: Annotated[str, msgspec.Meta(max_length=5000)] = ""


class PublishVideo(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    owner_id: UserId
    title: Title
    url: Url
    description: str = ""


class NewTitle(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Rename a video (its owner only)."""

    title: Title


class RenameVideo(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    title: Title
    by: UserId


class Viewing(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Record a viewing: counted once per `viewing_id`, however often it is sent."""

    viewing_id: ViewingId


class RecordViewing(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    viewing_id: ViewingId
    viewer_id: UserId | None = None  # None: watched without signing in


def publish(form: VideoDetails, actor: Actor) -> PublishVideo:
    assert actor.user_id is not None  # access "user"
    return PublishVideo(actor.user_id, form.title, form.url, form.description)


def rename(form: NewTitle, actor: Actor) -> RenameVideo:
    assert actor.user_id is not None
    return RenameVideo(form.title, actor.user_id)


def view(form: Viewing, actor: Actor) -> RecordViewing:
    return RecordViewing(form.viewing_id, actor.user_id)
