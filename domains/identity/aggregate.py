"""A user: registered once. The email's uniqueness is a reservation (`Unique` in the spec)."""

from __future__ import annotations

from typing import Any

import msgspec

from contracts.domain import EventMeta, Rejection
from domains.identity.commands import RegisterUser, UpdateProfile
from domains.identity.events import ProfileUpdated, UserRegistered


class User(msgspec.Struct, frozen=True):
    email: str
    display_name: str
    bio: str = ""


def decide(state: User | None, command: Any) -> list[msgspec.Struct] | Rejection:
    if isinstance(command, RegisterUser):
        if state is not None:
            return []  # registered already: a redelivery changes nothing
        return [UserRegistered(command.email, command.display_name, command.password_hash)]
    assert isinstance(command, UpdateProfile)
    if state is None:
        return Rejection(404, "No such user", "There is no user with this id.", slug="no-user")
    name, bio = command.display_name.strip(), command.bio.strip()
    if (name, bio) == (state.display_name, state.bio):
        return []
    return [ProfileUpdated(name, bio, state.email)]


def evolve(state: User | None, event: Any, meta: EventMeta) -> User:
    if isinstance(event, UserRegistered):
        return User(event.email, event.display_name)
    assert state is not None
    assert isinstance(event, ProfileUpdated)
    return msgspec.structs.replace(state, display_name=event.display_name, bio=event.bio)


def email_taken(command: RegisterUser) -> Rejection:
    return Rejection(
        409,
        "Email already registered",
        "There is already a user with this email address. Sign in instead.",
        slug="email-taken",
    )
