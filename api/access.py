"""Who sends a command, whether they may, and the command made of what they sent.

Checked before anything is published (DESIGN §4: 401, 403 and 404 publish
nothing):

- `actor`: the signed-in user, or 401 for a command with access "user"
  (looked up only for a command that needs to know: one KV read).
- `check_owner`: for a command on a resource only its owner may act on, the
  resource's record (an inline view) must name the user: 404 without a
  record, 403 for anyone else. (The owner of a record never changes, so the
  view's answer cannot go stale between this check and the decision; the
  domain's `decide` may check again.)
- `take_in`: a form's secret fields replaced by their argon2 hash (never
  logged, published or stored as sent), then the domain's pure `intake`
  makes the command.
- `without_secrets`: what an Idempotency-Key's fingerprint is taken of.
"""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request

from api.problems import HTTPProblem, not_found
from api.services import Services
from api.sessions import not_signed_in, signed_in
from contracts.domain import Actor, CommandSpec
from contracts.views import is_removed


async def actor(request: Request, spec: CommandSpec) -> Actor:
    if spec.access == "anyone" and spec.intake is None:
        return Actor(None)  # nobody asks who sends it: no session look-up on this path
    binding = await signed_in(request)
    if binding is None and spec.access == "user":
        raise not_signed_in()
    return Actor(None if binding is None else binding.user_id)


async def check_owner(svc: Services, spec: CommandSpec, aggregate_id: str, who: Actor) -> None:
    if spec.owner is None:
        return
    record = await svc.views.current.record(spec.owner.view, aggregate_id)
    if record is None or is_removed(record):
        raise not_found(f"The {spec.collection} resource")
    owner = msgspec.json.decode(record.state).get(spec.owner.field)
    if owner is None or owner != who.user_id:
        raise HTTPProblem(
            403,
            "Not allowed",
            f"Only its owner may {spec.action} this {spec.aggregate}.",
            slug="not-owner",
        )


async def take_in(svc: Services, spec: CommandSpec, form: msgspec.Struct, who: Actor) -> Any:
    """The command to publish for this request body."""
    if spec.intake is None:
        return form
    hashed = {name: await svc.passwords.hash(getattr(form, name)) for name in spec.secrets}
    return spec.intake(msgspec.structs.replace(form, **hashed), who)


def without_secrets(spec: CommandSpec, form: msgspec.Struct) -> msgspec.Struct:
    return msgspec.structs.replace(form, **dict.fromkeys(spec.secrets, ""))
