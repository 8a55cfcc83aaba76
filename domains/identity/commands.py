"""What may be asked of users: register. The browser sends a `Registration`; the API
hashes its password (argon2) and publishes a `RegisterUser`, which has no password."""

from __future__ import annotations

from typing import Annotated

import msgspec

from contracts.domain import Actor, one_line, some_text

# A pragmatic shape check (one @, a dot in the domain, no spaces); whether the
# address works is the welcome email's business.
EmailAddress = Annotated[
    str,
    msgspec.Meta(
        min_length=3,
        max_length=254,
        pattern=r"^[^@\s]+@[^@\s]+\.[^@\s.]+$",
        description="an email address such as ada@example.org",
    ),
]
# NIST SP 800-63B: at least 8 characters, long passphrases allowed; the upper
# bound keeps one request's hashing cheap.
Password = Annotated[str, msgspec.Meta(min_length=8, max_length=128)]
DisplayName = Annotated[str, some_text(60)]


class Registration(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Sign up: an email (unique, whatever its case), a password, a name to show."""

    email: EmailAddress
    password: Password
    display_name: DisplayName


class RegisterUser(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Register a user; `password_hash` is the API's argon2 hash of the password."""

    email: EmailAddress
    password_hash: Annotated[str, msgspec.Meta(min_length=1, max_length=512)]
    display_name: DisplayName


# A name is shown in headers and put in an email's subject: one line, no controls.
check_display_name = one_line("display_name")


def register(form: Registration, actor: Actor) -> RegisterUser:
    """The command of a registration whose password the API has replaced by its hash."""
    return RegisterUser(form.email.strip(), form.password, form.display_name.strip())


class UpdateProfile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Change your name and bio (`POST /api/users/me/profile`)."""

    display_name: DisplayName
    bio: Annotated[str, msgspec.Meta(max_length=500)] = ""
