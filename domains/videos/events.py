"""What happened to videos."""

from __future__ import annotations

import msgspec


class VideoPublished(msgspec.Struct, frozen=True):
    owner_id: str
    title: str
    url: str
    description: str


class VideoRenamed(msgspec.Struct, frozen=True):
    title: str
    by: str


class VideoNameRejected(msgspec.Struct, frozen=True):
    """A rename refused for its title: recorded, and the command fails (422)."""

    title: str
    reason: str
    by: str


class VideoViewed(msgspec.Struct, frozen=True):
    viewing_id: str
    viewer_id: str | None
