"""`/metrics`: Prometheus text, through prometheus-client (a registry per application).

Why prometheus-client: the reference Python client; its histograms, counters and
text exposition are what every Prometheus server and Grafana dashboard expect.

- `notify_hop_seconds{hop, domain}`: where a command's time goes, hop by hop.
  `accept` (request in → command ready to publish) and `publish` (JetStream
  publish and its acknowledgement) are timed here; the reactor's hops come
  from the timestamps every notice carries, observed as this process relays
  notices: `to_reactor` (submitted → the reactor starts: the publish, the
  queue), `decide` (load and decide), `append` (the events stored), `views`
  (inline views written), `notice` (the notice sent), and `relay` (the notice
  stored, republished and received here).
- Counters: commands accepted, requests refused (by reason), event streams
  opened (by kind); gauges: open streams, waiters.
- Read from NATS at each scrape: commands not yet delivered to a reactor
  (`notify_commands_pending`) and in flight, for all domains (they share one
  consumer); by domain, `notify_commands_lag{domain}`, the domain's commands
  after the consumer's ack floor (as Kafka counts lag), measured by a reactor
  every 5 s (`contracts.lag`) with `notify_commands_lag_age_seconds` saying
  how old that figure is; dead letters by domain, how many events each async
  view or aggregator is behind, and `notify_nats_up`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter as Tally
from typing import Final

import msgspec
import nats.errors
from nats.js import JetStreamContext
from nats.js.errors import KeyDeletedError, KeyNotFoundError
from nats.js.kv import KeyValue
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from contracts.domain import Readable
from contracts.failing import failing
from contracts.lag import LAG_KEY, lag_decoder
from contracts.notices import Notice
from contracts.registry import Registry
from contracts.topology import (
    COMMANDS_STREAM,
    DEADLETTERS_STREAM,
    EVENTS_STREAM,
    REACTOR_CONSUMER,
    RUNNER_PROGRESS_BUCKET,
)
from contracts.views import ViewBuckets

log = logging.getLogger(__name__)

BUCKETS: Final = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5)
REACTOR_HOPS: Final = (
    ("to_reactor", "submitted", "started"),
    ("decide", "started", "appending"),
    ("append", "appending", "appended"),
    ("views", "appended", "decided"),
    ("notice", "decided", "sent"),
)
SCRAPE_TIMEOUT: Final = 2.0


class Metrics:
    def __init__(self, registry: Registry | None = None) -> None:
        self._domains = registry
        self.registry = CollectorRegistry()
        r = self.registry
        self.hop = Histogram(
            "notify_hop_seconds", "A command's time, hop by hop", ["hop", "domain"],
            buckets=BUCKETS, registry=r,
        )  # fmt: skip
        self.accepted = Counter(
            "notify_commands_accepted", "Commands published", ["domain", "type"], registry=r
        )
        self.refused = Counter(
            "notify_requests_refused", "Requests refused before any work", ["reason"], registry=r
        )
        self.streams_opened = Counter(
            "notify_sse_streams_opened", "Event streams opened", ["stream"], registry=r
        )
        self.streams_open = Gauge("notify_sse_streams_open", "Event streams open", registry=r)
        self.notices_missed = Counter(
            "notify_relay_notices_missed",
            "Live notices this process never received (relayed from the store instead)",
            registry=r,
        )
        self.waiters = Gauge(
            "notify_relay_waiters", "Waiters registered with the relay", registry=r
        )
        self.nats_up = Gauge("notify_nats_up", "1 when NATS answered the last scrape", registry=r)
        self.pending = Gauge(
            "notify_commands_pending", "Commands not yet delivered to a reactor (lag)", registry=r
        )
        self.in_flight = Gauge(
            "notify_commands_in_flight", "Commands delivered, not yet acknowledged", registry=r
        )
        self.lag = Gauge(
            "notify_commands_lag",
            "Commands of the domain not yet done (after the reactor consumer's ack floor)",
            ["domain"],
            registry=r,
        )
        self.lag_age = Gauge(
            "notify_commands_lag_age_seconds",
            "How long ago a reactor measured notify_commands_lag",
            registry=r,
        )
        self.deadletters = Gauge(
            "notify_deadletters", "Messages in DEADLETTERS", ["domain"], registry=r
        )
        self._progress: KeyValue | None = None
        self._hops: dict[tuple[str, str], Histogram] = {}
        self._accepted: dict[str, Counter] = {}
        self.behind = Gauge(
            "notify_view_behind_events",
            "Events an async view or aggregator has still to fold",
            ["view", "domain"],
            registry=r,
        )
        self.failing = Gauge(
            "notify_job_failing",
            "1 while an async view, policy or aggregator partition cannot get past an event "
            "(task status says why)",
            ["job"],
            registry=r,
        )

    def domain_of(self, command_type: str) -> str:
        found = self._domains.command_domain.get(command_type) if self._domains else None
        return found.name if found is not None else "unknown"

    def observe_hop(self, hop: str, command_type: str, seconds: float) -> None:
        """One hop of one command (its domain's histogram)."""
        self._hop(hop, self.domain_of(command_type)).observe(max(0.0, seconds))

    def _hop(self, hop: str, domain: str) -> Histogram:
        # prometheus_client's labels() validates and locks on every call: several
        # times a command on the accept path, so each child is looked up once.
        child = self._hops.get((hop, domain))
        if child is None:
            child = self._hops[(hop, domain)] = self.hop.labels(hop, domain)
        return child

    def command_accepted(self, command_type: str) -> None:
        child = self._accepted.get(command_type)
        if child is None:
            child = self._accepted[command_type] = self.accepted.labels(
                self.domain_of(command_type), command_type
            )
        child.inc()

    def observe_notice(self, notice: Notice, received_at: float | None = None) -> None:
        """The reactor's hops of a notice (from its timings), and its relay to here."""
        times = dict(notice.timings or {})
        if not times:
            return
        times["submitted"] = notice.submitted_at.timestamp()
        domain = self.domain_of(notice.type)
        for hop, start, end in REACTOR_HOPS:
            if start in times and end in times:
                self._hop(hop, domain).observe(max(0.0, times[end] - times[start]))
        if "sent" in times:
            now = time.time() if received_at is None else received_at
            self._hop("relay", domain).observe(max(0.0, now - times["sent"]))

    async def refresh(
        self, js: JetStreamContext, views: ViewBuckets, *, connected: bool = True
    ) -> None:
        """Read the gauges that live in NATS (at most SCRAPE_TIMEOUT; else nats_up 0, and
        those gauges unknown: a backlog of minutes before stood beside nats_up 0)."""
        if connected:  # known away: no 2 s wait for the timeout
            try:
                async with asyncio.timeout(SCRAPE_TIMEOUT):
                    await self._refresh(js, views)
                self.nats_up.set(1)
                return
            except (nats.errors.Error, TimeoutError) as exc:
                log.debug("metrics: NATS did not answer (%r)", exc)
        self.nats_up.set(0)
        self._unknown()

    def _unknown(self) -> None:
        """The gauges read from NATS, not known now: NaN, or no series (by label)."""
        for gauge in (self.pending, self.in_flight, self.lag_age):
            gauge.set(math.nan)
        for labelled in (self.lag, self.deadletters, self.behind, self.failing):
            labelled.clear()

    async def _refresh(self, js: JetStreamContext, views: ViewBuckets) -> None:
        consumer = await js.consumer_info(COMMANDS_STREAM, REACTOR_CONSUMER)
        self.pending.set(consumer.num_pending or 0)
        self.in_flight.set(consumer.num_ack_pending or 0)
        await self._read_lag(js)
        stuck = await failing(js)
        self.failing.clear()  # a job that moved on has no series
        for failure in stuck:
            self.failing.labels(failure.job).set(1)
        letters = await js.stream_info(DEADLETTERS_STREAM, subjects_filter="dlq.>")
        by_domain: Tally[str] = Tally()
        for subject, count in (letters.state.subjects or {}).items():
            by_domain[self._letter_domain(subject)] += count
        names = {d.name for d in (self._domains.domains if self._domains else ())}
        for name in names | set(by_domain):
            self.deadletters.labels(name).set(by_domain.get(name, 0))
        if self._domains is None:
            return
        end = (await js.stream_info(EVENTS_STREAM)).state.last_seq
        for domain in self._domains.domains:
            readables: list[Readable] = [v for v in domain.views if not v.inline]
            for readable in [*readables, *domain.aggregators]:
                behind = max(0, end - await views.position(readable))
                self.behind.labels(readable.name, domain.name).set(behind)

    async def _read_lag(self, js: JetStreamContext) -> None:
        """The lag by domain as a reactor last measured it (none yet: no series)."""
        try:
            if self._progress is None:  # opened once (a stream info), read each scrape
                self._progress = await js.key_value(RUNNER_PROGRESS_BUCKET)
            entry = await self._progress.get(LAG_KEY)
            lag = lag_decoder.decode(entry.value or b"")
        except (KeyNotFoundError, KeyDeletedError, msgspec.DecodeError):
            return
        for domain, count in lag.by_domain.items():
            self.lag.labels(domain).set(count)
        self.lag_age.set(max(0.0, time.time() - lag.at.timestamp()))

    def _letter_domain(self, subject: str) -> str:
        """dlq.cmd.<Type>.<id>: the command's domain; dlq.ev.<aggregate>.<id>: the aggregate's."""
        parts = subject.split(".")
        if len(parts) > 2 and parts[1] == "cmd":
            return self.domain_of(parts[2])
        if len(parts) > 2 and parts[1] == "ev" and self._domains is not None:
            for domain in self._domains.domains:
                if any(a.name == parts[2] for a in domain.aggregates):
                    return domain.name
        return "unknown"

    def render(self) -> bytes:
        return generate_latest(self.registry)
