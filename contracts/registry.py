"""The domains as the machinery looks them up: by command, event, aggregate, view.

Built once per process from the list in `domains.DOMAINS` (or a test's own
list), and checked as it is built: a name used twice, a view or policy on an
unknown event, a resource view that is not inline, all fail at start-up with
one line rather than on the first command.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from contracts.domain import (
    SCOPE,
    Aggregate,
    Aggregator,
    CommandSpec,
    Domain,
    Event,
    GetRead,
    ListRead,
    Mailbox,
    Policy,
    Readable,
    SignIn,
    SummaryRead,
    View,
)
from contracts.topology import keyed_filter, partition_filter

NAME: Final = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
TYPE_NAME: Final = re.compile(r"^[A-Z][A-Za-z0-9]{0,63}$")
# A collection or an action: segments of a URL path, as they are written ("a" or "a/b").
SEGMENT: Final = re.compile(r"^[a-z][a-z0-9_-]{0,63}(/[a-z][a-z0-9_-]{0,63})*$")
# The machinery's own collections (/api/commands/{id}, /api/events, /api/sessions).
RESERVED: Final = frozenset({"commands", "events", "sessions"})
CREDENTIAL_FIELDS: Final = ("user_id", "email", "display_name", "password_hash")


class RegistryError(ValueError):
    """The domains do not fit together (a duplicate name, an unknown event...)."""


@dataclass(frozen=True)
class EventType:
    """An event schema with what the machinery needs to read it back."""

    spec: Event
    decoder: msgspec.json.Decoder[Any]

    def decode(self, data: bytes, version: int) -> Any:
        """Decode a stored event, upcasting it from an older schema version."""
        if version == self.spec.version:
            return self.decoder.decode(data)
        raw = msgspec.json.decode(data)
        for v in range(version, self.spec.version):
            raw = self.spec.upcasters[v](raw)
        return msgspec.convert(raw, self.spec.type)


class Registry:
    def __init__(self, domains: Iterable[Domain]) -> None:
        self.domains = tuple(domains)
        self.commands: dict[str, CommandSpec] = {}
        self.command_domain: dict[str, Domain] = {}
        self.events: dict[str, EventType] = {}
        self.aggregates: dict[str, Aggregate] = {}
        self.views: dict[str, View] = {}
        self.policies: dict[str, Policy] = {}
        self.mailboxes: list[Mailbox] = []
        self.sign_in: SignIn | None = None
        self.aggregators: dict[str, Aggregator] = {}
        for domain in self.domains:
            self._add(domain)
        self._check()

    def _add(self, domain: Domain) -> None:
        if not NAME.match(domain.name):
            raise RegistryError(f"domain name {domain.name!r} must match {NAME.pattern}")
        if [d.name for d in self.domains].count(domain.name) > 1:
            raise RegistryError(f"domain {domain.name!r} is declared twice")
        for spec in domain.commands:
            _unique(self.commands, spec.name, spec, "command")
            self.command_domain[spec.name] = domain
        for event in domain.events:
            if not TYPE_NAME.match(event.name):
                raise RegistryError(f"event name {event.name!r} must match {TYPE_NAME.pattern}")
            missing = set(range(1, event.version)) - set(event.upcasters)
            if missing:
                raise RegistryError(f"event {event.name} has no upcaster from version(s) {missing}")
            _unique(
                self.events, event.name, EventType(event, msgspec.json.Decoder(event.type)), "event"
            )
        for aggregate in domain.aggregates:
            if not NAME.match(aggregate.name):
                raise RegistryError(f"aggregate name {aggregate.name!r} must match {NAME.pattern}")
            _unique(self.aggregates, aggregate.name, aggregate, "aggregate")
        for view in domain.views:
            if not NAME.match(view.name) or view.name == "progress":  # view_progress is taken
                raise RegistryError(f"view name {view.name!r} must match {NAME.pattern}")
            _unique(self.views, view.name, view, "view")
        for policy in domain.policies:
            _unique(self.policies, policy.name, policy, "policy")
        self.mailboxes += domain.mailboxes
        if domain.sign_in is not None:
            if self.sign_in is not None:
                raise RegistryError(f"domain {domain.name}: a second SignIn (one domain at most)")
            self.sign_in = domain.sign_in
        for aggregator in domain.aggregators:
            if not NAME.match(aggregator.name) or aggregator.name == "progress":
                raise RegistryError(
                    f"aggregator name {aggregator.name!r} must match {NAME.pattern}"
                )
            _unique(self.aggregators, aggregator.name, aggregator, "aggregator")

    def _check(self) -> None:
        for spec in self.commands.values():
            if not TYPE_NAME.match(spec.name):
                raise RegistryError(f"command name {spec.name!r} must match {TYPE_NAME.pattern}")
            if spec.aggregate not in self.aggregates:
                raise RegistryError(f"command {spec.name}: unknown aggregate {spec.aggregate!r}")
            for needed in spec.requires:
                view = self.views.get(needed.view)
                if view is None or not view.inline:
                    raise RegistryError(
                        f"command {spec.name}: requires {needed.view!r}: not an inline view"
                    )
            if spec.resource is not None:
                view = self.views.get(spec.resource)
                if view is None or not view.inline:
                    raise RegistryError(
                        f"command {spec.name}: resource {spec.resource!r} must be an inline view"
                    )
            self._check_access(spec)
        self._check_mail_and_sign_in()
        for name, view in self.views.items():
            for event in view.events:
                known = self.events.get(event.__name__)
                if known is None:
                    raise RegistryError(f"view {name}: unknown event {event.__name__}")
                if view.inline and known.spec.key is not None:
                    # An inline view follows its aggregate's subject; keyed events are not on it.
                    raise RegistryError(f"view {name}: keyed event {event.__name__} is not inline")
            self._check_computed(view)
        for name, policy in self.policies.items():
            for event in policy.events:
                if event.__name__ not in self.events:
                    raise RegistryError(f"policy {name}: unknown event {event.__name__}")
        for name, aggregator in self.aggregators.items():
            if name in self.views:  # one bucket namespace: view_<name>
                raise RegistryError(f"aggregator {name!r} is declared twice (a view's name)")
            for event in aggregator.events:
                known = self.events.get(event.__name__)
                if known is None:
                    raise RegistryError(f"aggregator {name}: unknown event {event.__name__}")
                if known.spec.key is None:
                    raise RegistryError(
                        f"aggregator {name}: {event.__name__} is not a keyed event (Event(key=...))"
                    )
        for read in self.reads():
            readable = self.readable(read.view)
            if readable is None:
                raise RegistryError(f"read {read.path}: unknown view {read.view!r}")
            if isinstance(read, ListRead):
                if (read.action is None) != (read.parent is None):
                    raise RegistryError(f"read {read.path}: an action and a parent go together")
                if read.parent is not None and self.readable(read.parent) is None:
                    raise RegistryError(f"read {read.path}: unknown parent {read.parent!r}")
                ranked = isinstance(readable, Aggregator) and readable.rank is not None
                if read.parent is not None and ranked:
                    raise RegistryError(f"read {read.path}: a ranked aggregator has no parent")
                fields = set(readable.state.__struct_fields__)
                for name in read.filters:
                    if name not in fields:
                        raise RegistryError(
                            f"read {read.path}: {name!r} is not a field to filter on"
                        )
        self._check_routes()

    def _check_routes(self) -> None:
        """Every route is the domain's own: two of one method and shape (`{id}` and
        `{channel}` alike) would leave the second unreachable, silently."""
        routes: dict[tuple[str, str], str] = {}
        for method, path, owner in self._routes():
            shape = re.sub(r"\{[^}]*\}", "{}", path)
            taken = routes.setdefault((method, shape), owner)
            if taken != owner:
                raise RegistryError(f"{owner} and {taken} share the route {method} {path}")

    def _routes(self) -> Iterable[tuple[str, str, str]]:
        for spec in self.commands.values():
            _segments(f"command {spec.name}", spec.collection, spec.action)
            if (spec.collection or "").split("/")[0] in RESERVED:
                raise RegistryError(f"command {spec.name}: /api/{spec.collection} is taken")
            if spec.path is not None:
                yield "POST", spec.path, f"command {spec.name}"
        for read in self.reads():
            what = f"read {read.path} (view {read.view})"
            if isinstance(read, SummaryRead):
                segments = read.path.split("/")
                if segments[:2] != ["", "api"] or not all(map(SEGMENT.match, segments[2:])):
                    raise RegistryError(f"{what}: a path /api/<segment>[/<segment>...]")
                collection = segments[2] if len(segments) > 2 else ""
            else:
                collection = read.collection.split("/")[0]
                _segments(what, read.collection, read.action)
            if collection in RESERVED:
                raise RegistryError(f"{what}: /api/{collection} is taken")
            yield "GET", read.path, what
            readable = self.readable(read.view)
            if isinstance(read, GetRead) and readable is not None and readable.followable:
                yield "GET", read.path + "/live", what

    def _check_computed(self, view: View) -> None:
        if (view.apply is None) == (view.compute is None):
            raise RegistryError(f"view {view.name}: give it either `apply` or `compute`")
        if view.compute is None:
            if view.inputs:
                raise RegistryError(f"view {view.name}: inputs without `compute`")
            return
        if view.inline:
            raise RegistryError(f"view {view.name}: a computed view is async (not inline)")
        for source in view.inputs:
            if self.views.get(source.view.name) is not source.view:
                raise RegistryError(
                    f"view {view.name}: input {source.view.name!r} is not registered"
                )
            missing = set(source.view.events) - set(view.events)
            if missing:
                names = sorted(e.__name__ for e in missing)
                raise RegistryError(f"view {view.name}: the events of input {source.name} {names}")

    def _check_access(self, spec: CommandSpec) -> None:
        if (spec.form is None) != (spec.intake is None):
            raise RegistryError(f"command {spec.name}: a form and its intake go together")
        fields = set(spec.body.__struct_fields__)
        for secret in spec.secrets:
            if spec.form is None or secret not in fields:
                raise RegistryError(f"command {spec.name}: secret {secret!r} is not a form field")
        if spec.owner is not None:
            view = self.views.get(spec.owner.view)
            if view is None or not view.inline:
                raise RegistryError(
                    f"command {spec.name}: owner view {spec.owner.view!r} must be an inline view"
                )
            if spec.owner.field not in view.state.__struct_fields__:
                raise RegistryError(
                    f"command {spec.name}: {spec.owner.field!r} is not a field of {view.name}"
                )
            if spec.creates or spec.path is None or spec.access != "user":
                raise RegistryError(
                    f"command {spec.name}: an owner check needs an action route and access 'user'"
                )
        if spec.on_self and (spec.access != "user" or spec.action is None or spec.creates):
            raise RegistryError(f"command {spec.name}: on_self needs an action and access 'user'")
        if spec.access == "user" and self.sign_in is None:
            raise RegistryError(f"command {spec.name}: access 'user' needs a domain with SignIn")
        if spec.path is not None and not spec.body.__struct_config__.forbid_unknown_fields:
            # A misspelt field would be dropped quietly, and the command taken without it.
            raise RegistryError(
                f"command {spec.name}: {spec.body.__name__} needs forbid_unknown_fields=True"
            )
        if spec.unique is not None:
            if not SCOPE.match(spec.unique.scope):
                raise RegistryError(
                    f"command {spec.name}: unique scope {spec.unique.scope!r}"
                    f" must match {SCOPE.pattern}"
                )
            if not callable(spec.unique.value) or not callable(spec.unique.rejection):
                raise RegistryError(
                    f"command {spec.name}: Unique's value and rejection are functions"
                    " of the command"
                )

    def _check_mail_and_sign_in(self) -> None:
        for box in self.mailboxes:
            if box.aggregate not in self.aggregates:
                raise RegistryError(f"mailbox: unknown aggregate {box.aggregate!r}")
            if box.requested.__name__ not in self.events:
                raise RegistryError(f"mailbox: unknown event {box.requested.__name__}")
            for made in (box.begin(), box.sent(), box.failed("")):
                spec = self.commands.get(type(made).__name__)
                if spec is None or spec.aggregate != box.aggregate:
                    raise RegistryError(
                        f"mailbox: {type(made).__name__} is not a command of {box.aggregate!r}"
                    )
        if self.sign_in is not None:
            view = self.views.get(self.sign_in.view)
            if view is None or not view.inline:
                raise RegistryError(f"sign-in view {self.sign_in.view!r} must be an inline view")
            missing = set(CREDENTIAL_FIELDS) - set(view.state.__struct_fields__)
            if missing:
                raise RegistryError(f"sign-in view {view.name} lacks {sorted(missing)}")

    # ---- look-ups ---------------------------------------------------------------------

    def command(self, name: str) -> CommandSpec | None:
        return self.commands.get(name)

    def event(self, name: str) -> EventType | None:
        return self.events.get(name)

    def reads(self) -> list[ListRead | GetRead | SummaryRead]:
        return [read for domain in self.domains for read in domain.reads]

    def readable(self, name: str) -> Readable | None:
        """What a read names: a view or an aggregator (both are read as records by key)."""
        return self.views.get(name) or self.aggregators.get(name)

    @property
    def buckets(self) -> list[str]:
        """Every view_<name> bucket: one per view and one per aggregator."""
        return [*self.views, *self.aggregators]

    def get_read(self, view: str) -> GetRead | None:
        """The read that serves one record of `view` by id, if any."""
        return next((r for r in self.reads() if isinstance(r, GetRead) and r.view == view), None)

    def resource_url(self, view: str, key: str) -> str | None:
        read = self.get_read(view)
        return None if read is None else read.path.replace("{" + read.param + "}", key)

    def legacy_buckets(self) -> list[str]:
        """The previous version's buckets, as the domains declare them."""
        return [legacy.bucket for domain in self.domains for legacy in domain.legacy]

    def inline_views(self, event_names: Iterable[str]) -> list[View]:
        """The inline views that consume any of these event types."""
        wanted = set(event_names)
        return [
            v for v in self.views.values() if v.inline and wanted & {e.__name__ for e in v.events}
        ]

    def async_views(self) -> list[View]:
        return [v for v in self.views.values() if not v.inline]

    def event_filter(self, event_types: Iterable[type[msgspec.Struct]]) -> list[str]:
        """The EVENTS subjects that carry these event types: one wildcard per aggregate.

        Which aggregate records which event is learnt from the command
        specs' aggregates and their domains' events: an event belongs to the
        aggregates of its domain.
        """
        names = {e.__name__ for e in event_types}
        aggregates = sorted(
            {
                aggregate.name
                for domain in self.domains
                if names & {e.name for e in domain.events}
                for aggregate in domain.aggregates
            }
        )
        return [f"ev.{name}.>" for name in aggregates]

    def key_of(self, event: msgspec.Struct) -> str | None:
        """The key a keyed event is stored under; None for an event of its aggregate."""
        event_type = self.events.get(type(event).__name__)
        if event_type is None or event_type.spec.key is None:
            return None
        return event_type.spec.key(event)

    def partition_filter(self, aggregator: Aggregator, partition: int | None = None) -> list[str]:
        """The EVENTS subjects of an aggregator's keyed events: in one partition, or all."""
        aggregates = [f.split(".")[1] for f in self.event_filter(aggregator.events)]
        if partition is None:
            return [keyed_filter(a) for a in aggregates]
        return [partition_filter(a, partition) for a in aggregates]


def _segments(what: str, *segments: str | None) -> None:
    """Each given collection or action is written as a URL's path is."""
    for segment in segments:
        if segment is not None and not SEGMENT.match(segment):
            raise RegistryError(f"{what}: {segment!r} must match {SEGMENT.pattern}")


def _unique(index: dict[str, Any], name: str, value: Any, what: str) -> None:
    if name in index:
        raise RegistryError(f"{what} {name!r} is declared twice")
    index[name] = value
