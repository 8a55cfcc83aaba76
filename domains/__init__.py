"""The domains the service hosts: one package each, registered in this one list.

A domain is pure code (no NATS, no HTTP): what it declares in its `DOMAIN`
is all the machinery knows of it. To add one, write its package and add it
here (README: "Add a domain").
"""

from __future__ import annotations

from typing import Final

from contracts.domain import Domain
from contracts.registry import Registry
from domains import accounting, chat, identity, locations, outbox, posts, shipments, videos

DOMAINS: Final[tuple[Domain, ...]] = (
    locations.DOMAIN,
    shipments.DOMAIN,
    accounting.DOMAIN,
    identity.DOMAIN,
    outbox.DOMAIN,
    videos.DOMAIN,
    posts.DOMAIN,
    chat.DOMAIN,
)


def registry() -> Registry:
    """The registry of DOMAINS, checked (a RegistryError names what does not fit)."""
    return Registry(DOMAINS)
