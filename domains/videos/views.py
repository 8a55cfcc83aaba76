"""The read side of videos: each video with its view count, and the home page totals."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

import msgspec

from contracts.domain import EventMeta, Link, View
from domains.videos.events import VideoPublished, VideoRenamed, VideoViewed

HOME_KEY: Final = "home"


class VideoRecord(msgspec.Struct, frozen=True):
    id: str
    owner_id: str
    title: str
    url: str
    description: str
    views: int
    published_at: datetime
    renamed_at: datetime | None
    position: int


def video(record: VideoRecord | None, event: Any, meta: EventMeta) -> VideoRecord:
    if isinstance(event, VideoPublished):
        return VideoRecord(
            meta.aggregate_id,
            event.owner_id,
            event.title,
            event.url,
            event.description,
            0,
            meta.at,
            None,
            meta.seq,
        )
    assert record is not None
    if isinstance(event, VideoRenamed):
        return msgspec.structs.replace(
            record, title=event.title, renamed_at=meta.at, position=meta.seq
        )
    return msgspec.structs.replace(record, views=record.views + 1, position=meta.seq)


class Home(msgspec.Struct, frozen=True):
    """`GET /api/home`: videos watched in all and per video, videos published."""

    videos_watched: int = 0
    videos_published: int = 0
    per_video: dict[str, int] = {}
    position: int = 0


def home(record: Home | None, event: Any, meta: EventMeta) -> Home:
    record = record or Home()
    if isinstance(event, VideoPublished):
        return msgspec.structs.replace(
            record,
            videos_published=record.videos_published + 1,
            per_video={**record.per_video, meta.aggregate_id: 0},
            position=meta.seq,
        )
    assert isinstance(event, VideoViewed)
    video_id = meta.aggregate_id
    return msgspec.structs.replace(
        record,
        videos_watched=record.videos_watched + 1,
        per_video={**record.per_video, video_id: record.per_video.get(video_id, 0) + 1},
        position=meta.seq,
    )


def home_summary(records: list[Home]) -> Home:
    return records[0] if records else Home()


class Viewings(msgspec.Struct, frozen=True):
    """How often one user watched one video (a record per viewer and video)."""

    video_id: str
    count: int
    position: int


def viewings(record: Viewings | None, event: Any, meta: EventMeta) -> Viewings:
    count = (record.count if record else 0) + 1
    return Viewings(meta.aggregate_id, count, meta.seq)


def viewer_and_video(event: Any, meta: EventMeta) -> str | None:
    """`<viewer>.<video>`, so a viewer's records are listed under `<viewer>.`; none if anonymous."""
    return None if event.viewer_id is None else f"{event.viewer_id}.{meta.aggregate_id}"


def video_page(record: VideoRecord) -> Link:
    return Link(f"/videos/{record.id}", f"Open “{record.title}”")


VIDEOS = View(
    "videos",
    VideoRecord,
    (VideoPublished, VideoRenamed, VideoViewed),
    video,
    inline=True,
    followable=True,
    page=video_page,
)
# One record for the whole service, folded from EVENTS after the fact.
HOME = View("home", Home, (VideoPublished, VideoViewed), home, key=lambda e, m: HOME_KEY)
VIEWINGS = View("viewings", Viewings, (VideoViewed,), viewings, key=viewer_and_video, inline=True)
