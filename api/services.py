"""What the lifespan opens and the handlers use."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from nats.aio.client import Client
from nats.js import JetStreamContext
from starlette.requests import Request
from starlette.responses import Response

from api.backlog import Backlog
from api.cursors import Cursors
from api.idempotency import IdempotencyKeys
from api.limits import StreamLimits
from api.metrics import Metrics
from api.passwords import Passwords
from api.relay import NoticeRelay
from api.session import Accounts
from api.settings import Settings
from contracts.registry import Registry
from contracts.views import ActiveViews

Endpoint = Callable[[Request], Awaitable[Response]]


@dataclass
class Services:
    settings: Settings
    nc: Client
    js: JetStreamContext
    relay: NoticeRelay
    views: ActiveViews
    registry: Registry
    idempotency: IdempotencyKeys
    limits: StreamLimits
    passwords: Passwords
    cursors: Cursors
    backlog: Backlog
    accounts: Accounts | None = None  # None: no domain declares a SignIn
    metrics: Metrics = field(default_factory=Metrics)  # create_app gives it the registry


def services(request: Request) -> Services:
    svc = request.state.services
    assert isinstance(svc, Services)
    return svc


def session_id(request: Request) -> str:
    sid = request.state.session_id
    assert isinstance(sid, str)
    return sid


def session_sent(request: Request) -> bool:
    """Did the request bring its session's cookie (else its session is new)?"""
    return bool(request.state.session_sent)
