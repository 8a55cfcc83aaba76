"""A video: published by its owner, renamed by its owner only, each viewing counted once."""

from __future__ import annotations

from typing import Any

import msgspec
from immutables import Map

from contracts.domain import EventMeta, Rejection, has_control_characters
from contracts.notices import FieldError
from domains.videos.commands import PublishVideo, RecordViewing, RenameVideo
from domains.videos.events import VideoNameRejected, VideoPublished, VideoRenamed, VideoViewed


class Video(msgspec.Struct, frozen=True):
    owner_id: str
    title: str
    # Every viewing id counted so far: a viewing sent again (a retry, a
    # redelivery, long after any deduplication window) finds itself here. A
    # persistent map (the state is immutable): adding one shares the rest, where
    # a set copied per viewing made a fold of n viewings cost n² (`bench.fold`).
    viewings: Map[str, bool] = Map()


def title_problem(title: str) -> str | None:
    """Why a title cannot name a video (None: it can). The schema has checked its length."""
    if has_control_characters(title):
        return "must not contain control characters"
    if not any(c.isalnum() for c in title):
        return "must contain a letter or a digit"
    return None


def decide(state: Video | None, command: Any) -> list[msgspec.Struct] | Rejection:
    if isinstance(command, PublishVideo):
        if state is not None:
            return []
        problem = title_problem(command.title)
        if problem is not None:
            return _invalid_title(command.title, problem)
        return [
            VideoPublished(
                command.owner_id, command.title.strip(), command.url, command.description
            )
        ]
    if state is None:
        return Rejection(404, "No such video", "There is no video with this id.", slug="no-video")
    if isinstance(command, RenameVideo):
        if command.by != state.owner_id:
            return Rejection(403, "Not your video", "Only its owner may rename a video.")
        problem = title_problem(command.title)
        if problem is not None:
            rejected = VideoNameRejected(command.title, problem, command.by)
            return _invalid_title(command.title, problem, record=(rejected,))
        title = command.title.strip()
        return [] if title == state.title else [VideoRenamed(title, command.by)]
    assert isinstance(command, RecordViewing)
    if command.viewing_id in state.viewings:
        return []  # counted already: once per viewing, whatever the retries
    return [VideoViewed(command.viewing_id, command.viewer_id)]


def _invalid_title(title: str, problem: str, record: tuple[Any, ...] = ()) -> Rejection:
    return Rejection(
        422,
        "Video name rejected",
        f"The title {title!r} {problem}.",
        slug="video-name-rejected",
        errors=[FieldError("$.title", problem)],
        record=record,
    )


def evolve(state: Video | None, event: Any, meta: EventMeta) -> Video | None:
    if isinstance(event, VideoPublished):
        return Video(event.owner_id, event.title)
    assert state is not None
    if isinstance(event, VideoRenamed):
        return msgspec.structs.replace(state, title=event.title)
    if isinstance(event, VideoViewed):
        return msgspec.structs.replace(state, viewings=state.viewings.set(event.viewing_id, True))
    return state  # VideoNameRejected changes nothing
