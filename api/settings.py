"""API configuration, from environment variables with working local defaults."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import msgspec

from api.session import DEV_SECRET
from contracts.connection import NatsSettings

# The page: web/ at the top of the repository, linked as api/web so that an
# installed package carries it (package data).
WEB_DIR = Path(__file__).resolve().parent / "web"


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    nats: NatsSettings = msgspec.field(default_factory=NatsSettings)
    host: str = "127.0.0.1"
    port: int = 8000
    notice_timeout: float = 10.0  # default ?timeout= of a command's event stream
    max_notice_timeout: float = 300.0
    max_body_bytes: int = 64 * 1024
    header_timeout: float = 10.0  # seconds for a request's headers to arrive whole (408)
    body_timeout: float = 10.0  # seconds for its body (408)
    max_header_bytes: int = 32 * 1024  # 431 over it
    publish_timeout: float = 5.0
    # How long a POST keeps asking NATS to store its command while a cluster
    # elects the command stream's leader (the same message id: stored once),
    # before it answers 503.
    publish_patience: float = 5.0
    sse_ping: float = 15.0
    sse_retry_ms: int = 2000
    sse_send_timeout: float = 30.0
    max_streams: int = 10_000  # open event streams per API process
    max_streams_per_session: int = 16
    max_streams_per_client: int = 100  # per client address (streams and Prefer waits)
    # New commands are refused (503) while this many wait for a reactor (0: never).
    command_backlog_limit: int = 10_000
    # Proxies whose X-Forwarded-For names the client (comma-separated addresses; "*" all).
    trusted_proxies: str = ""
    cookie_secure: bool = False
    # Signs the session cookie: the same on every API instance, secret in production.
    session_secret: str = DEV_SECRET
    # Failed sign-ins allowed per email address and per client in a window (seconds).
    sign_in_failures_per_email: int = 5
    sign_in_failures_per_client: int = 20
    sign_in_window: float = 900.0
    log_level: str = "info"
    access_log: bool = True
    # Listen with SO_REUSEPORT: several API processes on one machine share the
    # port, the kernel spreads connections over them (`task cluster:up`).
    reuse_port: bool = False
    web_dir: Path = WEB_DIR
    dev: bool = False  # the page shows its developer panel (the stack runs in dev mode)

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        return cls(
            nats=NatsSettings.from_env(env, role="api"),
            host=env.get("API_HOST", "127.0.0.1"),
            port=int(env.get("API_PORT", "8000")),
            notice_timeout=float(env.get("NOTICE_TIMEOUT", "10")),
            sse_ping=float(env.get("SSE_PING", "15")),
            max_body_bytes=int(env.get("MAX_BODY_BYTES", str(64 * 1024))),
            header_timeout=float(env.get("HEADER_TIMEOUT", "10")),
            body_timeout=float(env.get("BODY_TIMEOUT", "10")),
            max_header_bytes=int(env.get("MAX_HEADER_BYTES", str(32 * 1024))),
            publish_patience=float(env.get("PUBLISH_PATIENCE", "5")),
            max_streams=int(env.get("MAX_SSE_STREAMS", "10000")),
            max_streams_per_session=int(env.get("MAX_SSE_STREAMS_PER_SESSION", "16")),
            max_streams_per_client=int(env.get("MAX_SSE_STREAMS_PER_CLIENT", "100")),
            command_backlog_limit=int(env.get("COMMAND_BACKLOG_LIMIT", "10000")),
            trusted_proxies=env.get("TRUSTED_PROXIES", ""),
            cookie_secure=env.get("SESSION_COOKIE_SECURE", "") in ("1", "true", "yes"),
            session_secret=env.get("SESSION_SECRET") or DEV_SECRET,
            sign_in_failures_per_email=int(env.get("SIGNIN_FAILURES_PER_EMAIL", "5")),
            sign_in_failures_per_client=int(env.get("SIGNIN_FAILURES_PER_CLIENT", "20")),
            sign_in_window=float(env.get("SIGNIN_WINDOW", "900")),
            log_level=env.get("LOG_LEVEL", "info").lower(),
            access_log=env.get("API_ACCESS_LOG", "1") not in ("0", "false", "no"),
            reuse_port=env.get("API_REUSE_PORT", "") in ("1", "true", "yes"),
            dev=env.get("API_DEV", "") in ("1", "true", "yes"),
        )
