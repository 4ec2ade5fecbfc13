"""Who may connect, by address: the client's real address, IP allow and deny lists, and
geo-blocking from a MaxMind-format database.

The client's address is the socket's peer unless that peer is a configured trusted proxy
(RTHUB_TRUSTED_PROXIES): then ``X-Forwarded-For`` is read from the right, skipping trusted
proxies, and the first address that is not one is the client. A header from anyone else is
ignored, so a client cannot choose the address the rules see. An L4 balancer adds no
header: behind one, the peer already is the client.

Rules, in order: an address in RTHUB_IP_DENY is refused; with RTHUB_IP_ALLOW set, an address
outside it is refused; with a database (RTHUB_GEOIP_DB), a country in RTHUB_GEO_DENY is
refused, and with RTHUB_GEO_ALLOW set, an address the database places elsewhere, or
nowhere, is refused. Checks are local lookups (no I/O): they run on every upgrade and
HTTP request.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from rthub.errors import Forbidden

log = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class AddressRefused(Forbidden):
    """An address the network rules refuse (close code 4403, HTTP 403)."""


def parse_address(text: str) -> Address | None:
    """An address from a peer or header entry (``[v6]:port`` and ``v4:port`` forms too)."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:text.find("]")] if "]" in text else text
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # ::ffff:1.2.3.4 is 1.2.3.4 to every rule
    return address


def _within(address: Address, networks: Iterable[Network]) -> bool:
    return any(address.version == net.version and address in net for net in networks)


@dataclass(frozen=True)
class NetworkPolicy:
    """The address rules of one gateway replica (built from settings at start)."""

    allow: tuple[Network, ...] = ()
    deny: tuple[Network, ...] = ()
    trusted_proxies: tuple[Network, ...] = ()
    geo_allow: frozenset[str] = frozenset()
    geo_deny: frozenset[str] = frozenset()
    geo_db: Any = None  # a maxminddb Reader, or None

    @classmethod
    def from_settings(cls, settings: Any) -> NetworkPolicy:
        reader = None
        if settings.geoip_db:
            import maxminddb  # only where a database is configured

            reader = maxminddb.open_database(settings.geoip_db)
        return cls(settings.ip_allow, settings.ip_deny, settings.trusted_proxies,
                   settings.geo_allow, settings.geo_deny, reader)

    @property
    def active(self) -> bool:
        """Whether any rule can refuse (the hot path skips the lookups otherwise)."""
        return bool(self.allow or self.deny or self.geo_allow or self.geo_deny)

    def client_ip(self, peer: str, forwarded_for: str | None) -> str:
        """The client's address: the peer, or what trusted proxies say in front of it."""
        if not forwarded_for or not self.trusted_proxies:
            return peer
        hop = parse_address(peer)
        if hop is None or not _within(hop, self.trusted_proxies):
            return peer  # the header of an untrusted peer is the client's own word
        for entry in reversed(forwarded_for.split(",")):
            address = parse_address(entry)
            if address is None:
                return peer  # a garbled chain proves nothing: judge the proxy itself
            if not _within(address, self.trusted_proxies):
                return str(address)
        return peer

    def check(self, ip: str) -> None:
        """Raise ``AddressRefused`` naming the rule that refuses ``ip``."""
        if not self.active:
            return
        address = parse_address(ip)
        if address is None:
            if self.allow or self.geo_allow:
                raise AddressRefused("connections from an unknown address are not allowed")
            return
        if _within(address, self.deny):
            raise AddressRefused(f"connections from {address} are refused (RTHUB_IP_DENY)")
        if self.allow and not _within(address, self.allow):
            raise AddressRefused(f"{address} is not in RTHUB_IP_ALLOW")
        if self.geo_db is not None and (self.geo_allow or self.geo_deny):
            country = self.country(str(address))
            if country in self.geo_deny:
                raise AddressRefused(f"connections from {country} are refused")
            if self.geo_allow and country not in self.geo_allow:
                where = country or "an address the database does not place"
                raise AddressRefused(f"connections from {where} are not allowed")

    def country(self, ip: str) -> str | None:
        """ISO country code of ``ip`` in the database (registered, else represented)."""
        return _country(self.geo_db, ip)


@lru_cache(maxsize=65536)
def _country(reader: Any, ip: str) -> str | None:
    try:
        record = reader.get(ip)
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    for field in ("country", "registered_country", "represented_country"):
        value = record.get(field)
        if isinstance(value, dict) and isinstance(value.get("iso_code"), str):
            return value["iso_code"].upper()
    return None
