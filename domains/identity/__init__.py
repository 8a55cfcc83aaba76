"""Identity: users register (email unique whatever its case) and sign in; a welcome email.

The password is hashed by the API (`secrets`) before the command is
published; what is stored is the argon2 hash, in the `UserRegistered` event
and the `credentials` view that sign-in checks (`SignIn`).
"""

from __future__ import annotations

from pathlib import Path

from contracts.domain import (
    Aggregate,
    CommandSpec,
    Domain,
    Event,
    GetRead,
    Policy,
    SignIn,
    Unique,
    WebPage,
)
from domains.identity.aggregate import decide, email_taken, evolve
from domains.identity.commands import (
    RegisterUser,
    Registration,
    UpdateProfile,
    check_display_name,
    register,
)
from domains.identity.events import ProfileUpdated, UserRegistered
from domains.identity.views import CREDENTIALS, USERS, credentials_key
from domains.identity.welcome import welcome

DOMAIN = Domain(
    name="identity",
    title="Account",
    commands=(
        CommandSpec(
            RegisterUser,
            aggregate="user",
            collection="users",
            form=Registration,
            intake=register,
            secrets=("password",),
            unique=Unique("user-email", lambda c: c.email, email_taken),
            check=check_display_name,
            resource=USERS.name,
            summary="Register (sign up): the email must not be taken, whatever its case",
        ),
        CommandSpec(
            UpdateProfile,
            aggregate="user",
            collection="users",
            action="profile",
            access="user",
            on_self=True,
            check=check_display_name,
            resource=USERS.name,
            summary="Change your display name and bio",
        ),
    ),
    events=(Event(UserRegistered), Event(ProfileUpdated)),
    aggregates=(Aggregate("user", initial=None, decide=decide, evolve=evolve),),
    views=(USERS, CREDENTIALS),
    policies=(Policy("welcome", (UserRegistered,), welcome),),
    reads=(GetRead("users", USERS.name, summary="A user's public profile"),),
    page=WebPage(
        "Account",
        "/account",
        Path(__file__).parent / "web",
        summary="Sign up, sign in and out; a welcome email, sent once.",
    ),
    sign_in=SignIn(
        CREDENTIALS.name,
        credentials_key,
        signin_page="/account/signin",
        signup_page="/account/signup",
    ),
)
