"""What happened to posts. Each carries its author, so a user's summary finds its key."""

from __future__ import annotations

import msgspec


class PostWritten(msgspec.Struct, frozen=True):
    author_id: str
    title: str
    body: str


class PostEdited(msgspec.Struct, frozen=True):
    author_id: str
    title: str
    body: str


class PostDeleted(msgspec.Struct, frozen=True):
    author_id: str
