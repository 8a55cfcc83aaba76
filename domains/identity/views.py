"""The read side of users: a public profile, and the credentials sign-in checks."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

import msgspec

from contracts.domain import EventMeta, Link, View, folded
from domains.identity.events import ProfileUpdated, UserRegistered


class UserRecord(msgspec.Struct, frozen=True):
    """What anyone may see of a user (no email, no hash)."""

    id: str
    display_name: str
    registered_at: datetime
    position: int
    bio: str = ""


class Credentials(msgspec.Struct, frozen=True):
    """What signing in checks, by email. Never served by a read route."""

    user_id: str
    email: str
    display_name: str
    password_hash: str
    position: int


def user(record: UserRecord | None, event: Any, meta: EventMeta) -> UserRecord:
    if isinstance(event, UserRegistered):
        return UserRecord(meta.aggregate_id, event.display_name, meta.at, meta.seq)
    assert record is not None
    return msgspec.structs.replace(
        record, display_name=event.display_name, bio=event.bio, position=meta.seq
    )


def credentials_key(email: str) -> str:
    """The credentials record of an address, whatever its case."""
    return hashlib.sha256(folded(email).encode()).hexdigest()


def credentials(record: Credentials | None, event: Any, meta: EventMeta) -> Credentials:
    if isinstance(event, UserRegistered):
        return Credentials(
            meta.aggregate_id, event.email, event.display_name, event.password_hash, meta.seq
        )
    assert record is not None
    return msgspec.structs.replace(record, display_name=event.display_name, position=meta.seq)


def user_page(record: UserRecord) -> Link:
    return Link("/account", "Your account")


USERS = View(
    "users", UserRecord, (UserRegistered, ProfileUpdated), user, inline=True, page=user_page
)
CREDENTIALS = View(
    "credentials",
    Credentials,
    (UserRegistered, ProfileUpdated),
    credentials,
    key=lambda event, meta: credentials_key(event.email),
    inline=True,
)
