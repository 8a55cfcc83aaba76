"""The read side of users: a public profile, and the credentials sign-in checks."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

import msgspec

from contracts.domain import EventMeta, Link, View, folded
from domains.identity.events import UserRegistered


class UserRecord(msgspec.Struct, frozen=True):
    """What anyone may see of a user (no email, no hash)."""

    id: str
    display_name: str
    registered_at: datetime
    position: int


class Credentials(msgspec.Struct, frozen=True):
    """What signing in checks, by email. Never served by a read route."""

    user_id: str
    email: str
    display_name: str
    password_hash: str
    position: int


def user(record: UserRecord | None, event: Any, meta: EventMeta) -> UserRecord:
    assert isinstance(event, UserRegistered)
    return UserRecord(meta.aggregate_id, event.display_name, meta.at, meta.seq)


def credentials_key(email: str) -> str:
    """The credentials record of an address, whatever its case."""
    return hashlib.sha256(folded(email).encode()).hexdigest()


def credentials(record: Credentials | None, event: Any, meta: EventMeta) -> Credentials:
    assert isinstance(event, UserRegistered)
    return Credentials(
        meta.aggregate_id, event.email, event.display_name, event.password_hash, meta.seq
    )


def user_page(record: UserRecord) -> Link:
    return Link("/account", "Your account")


USERS = View("users", UserRecord, (UserRegistered,), user, inline=True, page=user_page)
CREDENTIALS = View(
    "credentials",
    Credentials,
    (UserRegistered,),
    credentials,
    key=lambda event, meta: credentials_key(event.email),
    inline=True,
)
