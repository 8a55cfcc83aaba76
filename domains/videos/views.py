"""The read side of videos: each video with its view count, and the home page totals."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

import msgspec

from contracts.domain import EventMeta, Link, View, stable_shard
from domains.videos.events import VideoPublished, VideoRenamed, VideoViewed

HOME_SHARDS: Final = 64


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
    """`GET /api/home`: videos watched in all and per video, videos published. Stored as
    HOME_SHARDS records, each the totals of its share of the videos."""

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


def home_shard(event: Any, meta: EventMeta) -> str:
    """`home.<n>`: the video's share of the totals, the same in every process and run.
    One record for them all was rewritten whole by every viewing: O(videos) a viewing,
    and past about 100,000 videos over NATS's 4 MB payload."""
    return f"home.{stable_shard(meta.aggregate_id, HOME_SHARDS):02d}"


def home_summary(records: list[Home]) -> Home:
    """The shares added up (each video is in one of them)."""
    per_video: dict[str, int] = {}
    for record in records:
        per_video.update(record.per_video)
    return Home(
        videos_watched=sum(r.videos_watched for r in records),
        videos_published=sum(r.videos_published for r in records),
        per_video=per_video,
        position=max((r.position for r in records), default=0),
    )


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
# HOME_SHARDS records for the whole service, folded from EVENTS after the fact. Named
# home_totals since it is keyed by share: a store's view `home` (one record) is not
# read, and this one folds every event from the first by itself.
HOME = View("home_totals", Home, (VideoPublished, VideoViewed), home, key=home_shard)
VIEWINGS = View("viewings", Viewings, (VideoViewed,), viewings, key=viewer_and_video, inline=True)
