"""Videos: publish (signed in), rename (the owner only), viewings counted once each.

An invalid title on a rename is recorded (`VideoNameRejected`) and answered
with 422. The home page totals are an async view folded from EVENTS.
"""

from __future__ import annotations

from pathlib import Path

from contracts.domain import (
    Aggregate,
    CommandSpec,
    Domain,
    Event,
    GetRead,
    ListRead,
    Owner,
    SummaryRead,
    WebPage,
)
from domains.videos.aggregate import decide, evolve
from domains.videos.commands import (
    NewTitle,
    PublishVideo,
    RecordViewing,
    RenameVideo,
    VideoDetails,
    Viewing,
    publish,
    rename,
    view,
)
from domains.videos.events import VideoNameRejected, VideoPublished, VideoRenamed, VideoViewed
from domains.videos.views import HOME, VIDEOS, VIEWINGS, Home, home_summary

DOMAIN = Domain(
    name="videos",
    title="Videos",
    commands=(
        CommandSpec(
            PublishVideo,
            aggregate="video",
            collection="videos",
            access="user",
            form=VideoDetails,
            intake=publish,
            resource=VIDEOS.name,
            summary="Publish a video (signed in; you own it)",
        ),
        CommandSpec(
            RenameVideo,
            aggregate="video",
            collection="videos",
            action="rename",
            access="user",
            owner=Owner(VIDEOS.name),
            form=NewTitle,
            intake=rename,
            resource=VIDEOS.name,
            summary="Rename a video (its owner only; an invalid title is rejected, 422)",
        ),
        CommandSpec(
            RecordViewing,
            aggregate="video",
            collection="videos",
            action="views",
            form=Viewing,
            intake=view,
            resource=VIDEOS.name,
            summary="Record a viewing (counted once per viewing_id)",
        ),
    ),
    events=(
        Event(VideoPublished),
        Event(VideoRenamed),
        Event(VideoNameRejected),
        Event(VideoViewed),
    ),
    aggregates=(Aggregate("video", initial=None, decide=decide, evolve=evolve),),
    views=(VIDEOS, HOME, VIEWINGS),
    reads=(
        SummaryRead(
            "/api/home", HOME.name, home_summary, Home, summary="Videos watched, in all and each"
        ),
        ListRead("videos", VIDEOS.name, filters=("owner_id",), summary="Videos, newest first"),
        GetRead("videos", VIDEOS.name, summary="One video, with its view count"),
    ),
    page=WebPage(
        "Videos",
        "/videos",
        Path(__file__).parent / "web",
        summary="Publish and rename videos, watch them: each viewing counted once.",
    ),
)
