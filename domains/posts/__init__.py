"""Posts and user summaries: users write, edit and delete posts (their own only); each user's
summary is made again from all of the user's inputs by one pure function (`summary.py`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from contracts.domain import (
    Actor,
    Aggregate,
    CommandSpec,
    Domain,
    Event,
    GetRead,
    ListRead,
    Owner,
    Schema,
    Struct,
    WebPage,
)
from domains.posts.aggregate import decide, evolve
from domains.posts.commands import (
    DeletePost,
    EditPost,
    Nothing,
    PostText,
    WritePost,
    delete,
    edit,
    write,
)
from domains.posts.events import PostDeleted, PostEdited, PostWritten
from domains.posts.summary import SUMMARIES
from domains.posts.views import POSTS, POSTS_BY_AUTHOR


def _change(
    command: Schema, action: str, form: Schema, intake: Callable[[Any, Actor], Struct], summary: str
) -> CommandSpec:
    return CommandSpec(
        command,
        aggregate="post",
        collection="posts",
        action=action,
        access="user",
        owner=Owner(POSTS.name, "author_id"),
        form=form,
        intake=intake,
        resource=POSTS.name,
        summary=summary,
    )


DOMAIN = Domain(
    name="posts",
    title="Profile",
    commands=(
        CommandSpec(
            WritePost,
            aggregate="post",
            collection="posts",
            access="user",
            form=PostText,
            intake=write,
            resource=POSTS.name,
            summary="Write a post (signed in: you are its author)",
        ),
        _change(EditPost, "edit", PostText, edit, "Edit your post"),
        _change(DeletePost, "delete", Nothing, delete, "Delete your post"),
    ),
    events=(Event(PostWritten), Event(PostEdited), Event(PostDeleted)),
    aggregates=(Aggregate("post", initial=None, decide=decide, evolve=evolve),),
    views=(POSTS, POSTS_BY_AUTHOR, SUMMARIES),
    reads=(
        ListRead("posts", POSTS.name, filters=("author_id",), summary="Posts, newest first"),
        GetRead("posts", POSTS.name, summary="One post"),
        GetRead(
            "users",
            SUMMARIES.name,
            action="summary",
            summary="A user's summary, made again from all of the user's inputs",
        ),
    ),
    page=WebPage(
        "Profile",
        "/profile",
        Path(__file__).parent / "web",
        summary="Your profile, your posts and your summary, right after each change.",
    ),
)
