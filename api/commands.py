"""Commands in (DESIGN §4): one POST route per command a domain declares.

POST publishes exactly one message (JetStream, `Nats-Msg-Id` = command id) and
answers 202 only once JetStream has acknowledged it. Nothing else is written
on the request path, except the key record when the client sends an
Idempotency-Key, and nothing at all when the request is refused.

`Prefer: wait=N` registers with the relay before publishing, so a reactor
faster than this request cannot slip its notice past the waiter.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Final

import msgspec
import nats.errors
import nats.js.errors
from starlette.requests import Request
from starlette.responses import Response

from api.access import actor, check_owner, take_in, without_secrets
from api.body import command_payload
from api.eventstream import ended_on_exit
from api.headers import idempotency_key, prefer_wait
from api.idempotency import (
    InFlight,
    Mismatch,
    Replay,
    Started,
    StoredResponse,
    fingerprint,
    lease_for,
)
from api.limits import Holder, holder_of
from api.problems import PROBLEM_JSON, HTTPProblem
from api.services import Endpoint, Services, services, session_id, session_sent
from api.status import Accepted
from api.streams import wait_for_notice
from api.urls import events_url, resource_id_param, status_url
from contracts import tracing
from contracts.commands import MAX_SIMULATED_DELAY, Command, encoder, new_aggregate_id
from contracts.connection import while_unavailable
from contracts.domain import CommandSpec
from contracts.lookups import StoredNotice, find_command
from contracts.notices import FieldError
from contracts.topology import command_subject

log = logging.getLogger(__name__)


def endpoint(spec: CommandSpec) -> Endpoint:
    """The POST handler of one command's route."""

    async def submit(request: Request) -> Response:
        return await _submit(request, spec)

    submit.__name__ = f"submit_{spec.name}"
    return submit


async def _submit(request: Request, spec: CommandSpec) -> Response:
    arrived = time.perf_counter()
    svc = services(request)
    who = await actor(request, spec)
    if spec.on_self:
        aggregate_id = who.user_id  # /api/<collection>/me/<action>: the sender's own
    else:
        aggregate_id = None if spec.creates else resource_id_param(request, spec.collection)
    limit = spec.max_body or svc.settings.max_body_bytes
    form = await command_payload(request, spec.body, limit, svc.settings.body_timeout)
    _check(spec, form)
    if aggregate_id is not None:
        await check_owner(svc, spec, aggregate_id, who)
    delay = _simulated_delay(request)
    wait_s = prefer_wait(request.headers.get("prefer"))
    try:
        key = idempotency_key(request.headers.get("idempotency-key"))
    except ValueError as exc:
        raise HTTPProblem(400, "Invalid Idempotency-Key", str(exc)) from None

    command_id = uuid.uuid4().hex
    started: Started | None = None
    if key is not None:
        digest = fingerprint(request.url.path, without_secrets(spec, form))
        # Asked again while NATS answers as unavailable (a KV leader election), as the
        # publish is: a create stored before is found to be this request's own.
        begun = await while_unavailable(
            lambda: svc.idempotency.begin(
                session_id(request),
                key,
                digest,
                command_id,
                lease_for(wait_s),
                cookie=session_sent(request),
            ),
            within=svc.settings.publish_patience,
            what="an Idempotency-Key",
        )
        if isinstance(begun, Replay):
            return _to_response(begun.response, replayed=True)
        if isinstance(begun, InFlight):
            raise HTTPProblem(
                409,
                "Request in progress",
                "A request with this Idempotency-Key has not answered yet; retry when it has.",
                slug="idempotency-in-flight",
                headers={"Retry-After": "1"},
            )
        if isinstance(begun, Mismatch):
            raise HTTPProblem(
                422,
                "Idempotency-Key reused",
                "This Idempotency-Key was already used with a different request body.",
                slug="idempotency-mismatch",
            )
        started, command_id = begun, begun.command_id
    try:
        if started is None or not started.taken_over:
            _admit(svc)  # a new command: refused before a password is hashed for it
        # After the key: a replay is answered without hashing a password again.
        payload = await take_in(svc, spec, form, who)
        await _check_references(svc, spec, payload)
    except Exception:  # a problem, or NATS failing under a read: nothing published
        await _let_go(svc, started)
        raise

    submitted_at = datetime.now(UTC)
    command = Command(
        command_id=command_id,
        type=spec.name,
        aggregate_id=aggregate_id or new_aggregate_id(command_id, submitted_at),
        submitted_at=submitted_at,
        session_id=session_id(request),
        # The client's X-Request-ID when it gave a valid one (api.edge), else our own.
        correlation_id=request.state.client_request_id or command_id,
        payload=msgspec.Raw(encoder.encode(payload)),
        simulate_delay_s=delay,
        traceparent=tracing.child(request.state.trace),  # parsed by api.edge
    )
    accept = time.perf_counter() - arrived  # in, parsed, checked, ready to publish
    svc.metrics.observe_hop("accept", spec.name, accept)
    if started is None:
        return _to_response(
            await _accept(
                svc, command, wait_s, spec.creates, republish=False, holder=holder_of(request)
            )
        )
    try:
        response = await _accept(
            svc,
            command,
            wait_s,
            spec.creates,
            republish=started.taken_over,
            holder=holder_of(request),
        )
    except HTTPProblem as exc:
        await _let_go(svc, started, maybe_stored=isinstance(exc, Unacknowledged))
        raise
    except Exception:  # NATS failing under the publish or the wait: maybe stored
        await _let_go(svc, started, maybe_stored=True)
        raise
    try:
        await svc.idempotency.finish(started, response)
    except nats.errors.Error as exc:
        # The command is accepted whatever happens to the key's record: answer
        # as accepted. A retry meanwhile gets 409 until the record goes stale,
        # then takes it over with the same command id (see api.idempotency).
        log.warning("could not record the answer for an Idempotency-Key: %r", exc)
    return _to_response(response)


def _check(spec: CommandSpec, payload: object) -> None:
    """422 if the domain's own check of the whole payload finds fault (beyond its schema)."""
    if spec.check is not None:
        errors = list(spec.check(payload, datetime.now(UTC)))
        if errors:
            raise _invalid(spec, "is not valid", errors)


async def _check_references(svc: Services, spec: CommandSpec, payload: object) -> None:
    """422 if the command names a record that does not exist (an unknown account, say)."""
    missing = [
        FieldError(loc=f"$.{needed.field}", msg=needed.msg)
        for needed in spec.requires
        if not await svc.views.current.exists(needed.view, needed.key(payload))
    ]
    if missing:
        raise _invalid(spec, "names what does not exist", missing)


def _invalid(spec: CommandSpec, says: str, errors: list[FieldError]) -> HTTPProblem:
    detail = f"The {spec.body.__name__} command {says}: " + "; ".join(
        f"{e.loc}: {e.msg}" for e in errors
    )
    return HTTPProblem(422, "Invalid command", detail, slug="validation", errors=errors)


async def _accept(
    svc: Services,
    command: Command,
    wait_s: int | None,
    created: bool,
    *,
    republish: bool,
    holder: Holder,
) -> StoredResponse:
    """Publish the command (unless it is already stored) and decide the answer.

    A wait holds a slot of the stream limits; without one free it is not
    honoured (the plain 202, as RFC 7240 lets a server do), never refused.
    """
    if wait_s is None or not svc.limits.try_acquire(holder):
        return await _publish_accepted(svc, command, republish)
    try:
        async with svc.relay.command(command.command_id) as queue:  # before the publish
            accepted = await _publish_accepted(svc, command, republish)
            try:
                # The server stopping ends the wait: the plain 202, at once.
                with ended_on_exit(queue):
                    async with asyncio.timeout(wait_s):
                        stored = await wait_for_notice(svc, command.command_id, queue, wait_s)
            except (nats.errors.Error, TimeoutError) as exc:
                # Accepted: NATS failing under the wait (a read of the store) is the
                # plain 202, never a 503, which would say nothing was stored (and its
                # retry, without a key, would be a second command).
                log.warning("command %s: no notice read in its wait: %r", command.command_id, exc)
                stored = None
    finally:
        svc.limits.release(holder)
    return _waited(stored, accepted, wait_s, created)


async def _let_go(svc: Services, started: Started | None, *, maybe_stored: bool = False) -> None:
    """The request answers with a problem: let its Idempotency-Key go.

    Nothing accepted: the key is freed for a retry. Maybe accepted (a publish not
    acknowledged), or a key taken over (its command id may have been published by the
    request that died): it is handed over, so the retry takes the same command id over
    at once and never makes a second command. If NATS is gone too, the record goes
    stale and is taken over the same way, later."""
    if started is None:
        return
    with contextlib.suppress(nats.errors.Error):
        if maybe_stored or started.taken_over:
            await svc.idempotency.hand_over(started)
        else:
            await svc.idempotency.release(started)


class Unacknowledged(HTTPProblem):
    """503 after a publish that was not acknowledged: the command may be stored."""


async def _publish_accepted(svc: Services, command: Command, republish: bool) -> StoredResponse:
    """Publish (a taken-over key's command only if it is not stored yet); the 202 answer."""
    started = time.perf_counter()
    if not (republish and await find_command(svc.js, command.command_id) is not None):
        _admit(svc)  # again: the backlog may have grown while the payload was taken in
        await _publish(svc, command)
    publish_ms = (time.perf_counter() - started) * 1000
    svc.metrics.command_accepted(command.type)
    svc.metrics.observe_hop("publish", command.type, publish_ms / 1000)
    return _accepted(command.command_id, publish_ms)


def _admit(svc: Services) -> None:
    """503 busy while too many commands wait for a reactor (api.backlog): nothing stored."""
    busy = svc.backlog.refusal()
    if busy is not None:
        svc.metrics.refused.labels("busy").inc()
        raise busy


def _accepted(command_id: str, publish_ms: float) -> StoredResponse:
    body = Accepted(command_id, "pending", status_url(command_id), events_url(command_id))
    return StoredResponse(
        202,
        {
            "Location": status_url(command_id),
            "Content-Type": "application/json",
            # How long the JetStream publish took, acknowledgement included.
            "Server-Timing": f"publish;dur={publish_ms:.3f}",
        },
        encoder.encode(body),
    )


# The notice's position, which a waited answer's body (the resource) may not hold.
POSITION_HEADER: Final = "Event-Position"


def _waited(
    stored: StoredNotice | None, accepted: StoredResponse, wait_s: int, created: bool
) -> StoredResponse:
    """The answer after `Prefer: wait`: 201 (made) or 200 (changed) with the resource, the
    problem, or the plain 202. A command with no resource (a batch of messages, a deletion)
    answers 200 with its notice: 201 says a resource was made, at its Location."""
    applied = {
        "Preference-Applied": f"wait={wait_s}",
        "Server-Timing": accepted.headers["Server-Timing"],
    }
    if stored is None:
        return StoredResponse(accepted.status, {**accepted.headers, **applied}, accepted.body)
    notice = stored.notice
    if notice.position is not None:  # for ?min_position= on any view, async ones too
        applied[POSITION_HEADER] = str(notice.position)
    if notice.status == "succeeded":
        headers = {"Content-Type": "application/json", **applied}
        if notice.resource_url:
            headers["Location"] = notice.resource_url
        if notice.resource is None:  # none made (a batch of messages) or left (a deletion)
            return StoredResponse(200, headers, encoder.encode(notice))
        return StoredResponse(201 if created else 200, headers, encoder.encode(notice.resource))
    assert notice.error is not None
    return StoredResponse(
        notice.error.status, {"Content-Type": PROBLEM_JSON, **applied}, encoder.encode(notice.error)
    )


def _to_response(stored: StoredResponse, *, replayed: bool = False) -> Response:
    headers = {k: v for k, v in stored.headers.items() if k != "Content-Type"}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return Response(
        stored.body,
        status_code=stored.status,
        headers=headers,
        media_type=stored.headers.get("Content-Type"),
    )


def _simulated_delay(request: Request) -> float:
    raw = request.headers.get("x-simulate-delay")
    if raw is None:
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= MAX_SIMULATED_DELAY:  # NaN too
        raise HTTPProblem(
            422,
            "Invalid header",
            f"X-Simulate-Delay must be seconds in [0, {MAX_SIMULATED_DELAY:g}]",
            slug="validation",
        )
    return value


async def _publish(svc: Services, command: Command) -> None:
    """Publish and wait for the JetStream ack, or answer 503."""
    unavailable = Unacknowledged(
        503,
        "Service unavailable",
        "The command store did not acknowledge the command. Retry shortly.",
        headers={"Retry-After": "2"},
    )
    if not svc.nc.is_connected:
        raise unavailable
    headers = {"Nats-Msg-Id": command.command_id}
    if command.traceparent:
        headers[tracing.HEADER] = command.traceparent
    subject, payload = command_subject(command.type, command.command_id), encoder.encode(command)
    patience = svc.settings.publish_patience
    deadline = asyncio.get_running_loop().time() + patience

    async def publish() -> None:
        left = deadline - asyncio.get_running_loop().time()
        timeout = min(svc.settings.publish_timeout, max(left, 0.5))
        await svc.js.publish(subject, payload, timeout=timeout, headers=headers)

    try:
        # A cluster electing COMMANDS' leader answers "no stream" or nothing for a
        # moment: asked again (the same Nats-Msg-Id, so stored once) before 503.
        await while_unavailable(publish, within=patience, what="a command")
    except nats.js.errors.NoStreamResponseError:
        raise  # no stream takes the subject: answered naming what is missing (api.app)
    except (nats.errors.Error, TimeoutError) as exc:
        raise unavailable from exc
