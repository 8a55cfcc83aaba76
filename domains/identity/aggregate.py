"""A user: registered once. The email's uniqueness is a reservation (`Unique` in the spec)."""

from __future__ import annotations

from typing import Any

import msgspec

from contracts.domain import EventMeta, Rejection
from domains.identity.commands import RegisterUser
from domains.identity.events import UserRegistered


class User(msgspec.Struct, frozen=True):
    email: str
    display_name: str


def decide(state: User | None, command: Any) -> list[msgspec.Struct] | Rejection:
    assert isinstance(command, RegisterUser)
    if state is not None:
        return []  # registered already: a redelivery changes nothing
    return [UserRegistered(command.email, command.display_name, command.password_hash)]


def evolve(state: User | None, event: Any, meta: EventMeta) -> User:
    assert isinstance(event, UserRegistered)
    return User(event.email, event.display_name)


def email_taken(command: RegisterUser) -> Rejection:
    return Rejection(
        409,
        "Email already registered",
        "There is already a user with this email address. Sign in instead.",
        slug="email-taken",
    )
