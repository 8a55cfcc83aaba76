"""What happened to users."""

from __future__ import annotations

import msgspec


class UserRegistered(msgspec.Struct, frozen=True):
    email: str
    display_name: str
    password_hash: str  # argon2: the password itself never reaches the event store


class ProfileUpdated(msgspec.Struct, frozen=True):
    display_name: str
    bio: str
    email: str  # the user's, so the credentials record (keyed by email) follows the name
