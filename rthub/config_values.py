"""How each configuration variable's text is read and checked: a ``Var`` of the table in
``rthub.config`` names one of these parsers, which returns the value or raises
``ValueError`` (``config.load`` turns that into one line naming the variable)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rthub.errors import ConfigError
from rthub.keys import parse_keys


@dataclass(frozen=True)
class Var:
    """One environment variable: its name, default, parser and what it means."""

    name: str
    field: str
    default: str | None
    parse: Callable[[str], Any]
    expects: str
    doc: str
    secret: bool = False  # never echo the value in an error


def int_between(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        value = int(raw.strip())
        if not low <= value <= high:
            raise ValueError
        return value
    return parse


def catalog_dir(raw: str) -> str:
    """A notification catalog: a folder with ``templates/`` and ``locale/``."""
    path = Path(raw).expanduser()
    if not (path / "templates").is_dir() or not (path / "locale").is_dir():
        raise ValueError(raw)
    return str(path.resolve())


def readable_file(raw: str) -> str:
    path = Path(raw).expanduser()
    if not path.is_file() or not os.access(path, os.R_OK):
        raise ValueError(raw)
    return str(path.resolve())


def seconds(low: float, high: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        value = float(raw.strip())
        if not low <= value <= high:
            raise ValueError
        return value

    return parse


def url(*schemes: str) -> Callable[[str], str | None]:
    def parse(raw: str) -> str | None:
        raw = raw.strip()
        if not raw:
            return None
        if not raw.startswith(tuple(f"{s}://" for s in schemes)):
            raise ValueError
        return raw

    return parse


def pinned(raw: str) -> frozenset[tuple[str, str, str]]:
    """``kind:id`` or ``kind:tenant:id``, comma separated."""
    keys = set()
    for item in filter(None, (part.strip() for part in raw.split(","))):
        parts = item.split(":")
        if len(parts) == 2:
            parts = [parts[0], "default", parts[1]]
        if len(parts) != 3 or not all(parts):
            raise ValueError
        keys.add((parts[1], parts[0], parts[2]))  # stored as (tenant, kind, id)
    return frozenset(keys)


def optional(raw: str) -> str | None:
    return raw.strip() or None


def host(raw: str) -> str:
    if not raw.strip() or any(c.isspace() for c in raw.strip()):
        raise ValueError(raw)
    return raw.strip()


def secret(raw: str) -> str | None:
    raw = raw.strip()
    if raw and len(raw) < 32:
        raise ValueError
    return raw or None


_AUTOSCALING_KEYS = {"min_replicas", "max_replicas", "initial_replicas",
                     "target_sockets_per_replica", "target_ongoing_requests",
                     "upscale_delay_s", "downscale_delay_s", "look_back_period_s"}


def autoscaling(raw: str) -> dict[str, float] | None:
    if not raw.strip():
        return None
    value = json.loads(raw)  # a JSONDecodeError is a ValueError
    if not isinstance(value, dict) or not value or set(value) - _AUTOSCALING_KEYS or not all(
            isinstance(v, int | float) and not isinstance(v, bool) and v >= 0
            for v in value.values()):
        raise ValueError
    return value


def choice(*allowed: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw.strip() not in allowed:
            raise ValueError
        return raw.strip()

    return parse


def families(raw: str) -> frozenset[str]:
    """RTHUB_EVENT_FAMILIES: a comma separated subset of the exported families, or none."""
    from rthub.event_catalog import FAMILIES

    chosen = frozenset(part.strip() for part in raw.split(",") if part.strip())
    if chosen == {"none"}:
        return frozenset()
    if not chosen or not chosen <= set(FAMILIES):
        raise ValueError
    return chosen


def keys(raw: str) -> str | None:
    """RTHUB_ENCRYPTION_KEYS: checked once (``rthub.keys``), kept as the raw string."""
    raw = raw.strip()
    if not raw:
        return None
    try:
        parse_keys(raw)
    except ConfigError:
        raise ValueError from None
    return raw


def identifier(raw: str) -> str:
    raw = raw.strip()
    if not raw or not all(c.isascii() and (c.isalnum() or c == "_") for c in raw):
        raise ValueError
    return raw


def mime_list(raw: str) -> frozenset[str]:
    types = frozenset(filter(None, (part.strip().lower() for part in raw.split(","))))
    if not types or not all(t.count("/") == 1 and " " not in t for t in types):
        raise ValueError
    return types


def blob_url(raw: str) -> str | None:
    raw = raw.strip()
    if raw and not raw.startswith(("file:///", "s3://")):
        raise ValueError
    return raw or None


ALLOWED_ATTACHMENTS = ("image/png,image/jpeg,image/gif,image/webp,audio/mpeg,audio/ogg,"
                       "audio/mp4,audio/x-wav,video/mp4,application/pdf,text/plain")


def ladder(raw: str) -> tuple[int, ...]:
    tiers = tuple(int(part) for part in raw.split(","))
    if not tiers or any(t <= 0 for t in tiers) or list(tiers) != sorted(set(tiers)):
        raise ValueError
    return tiers


def log_level(raw: str) -> str:
    level = raw.strip().upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ValueError
    return level


def name(raw: str) -> str:
    raw = raw.strip()
    if not raw or not all(c.isalnum() or c in "-_" for c in raw):
        raise ValueError
    return raw


def cidrs(raw: str) -> tuple:
    """Comma separated addresses or CIDR blocks, IPv4 and IPv6 (``10.0.0.0/8, ::1``)."""
    import ipaddress

    return tuple(ipaddress.ip_network(part.strip(), strict=False)
                 for part in raw.split(",") if part.strip())


def countries(raw: str) -> frozenset[str]:
    """Comma separated ISO 3166-1 alpha-2 country codes."""
    codes = frozenset(part.strip().upper() for part in raw.split(",") if part.strip())
    if not all(len(c) == 2 and c.isascii() and c.isalpha() for c in codes):
        raise ValueError
    return codes


RATE_SCOPES = ("user", "ip", "tenant")


def rate_limits(raw: str) -> tuple[tuple[str, str, float, float], ...]:
    """``scope:what=rate/burst`` rules, comma separated: scope is user, ip or tenant; what is
    a message type, ``*`` (every frame), ``connect`` (a socket opening) or ``http`` (an HTTP
    API request); rate is tokens a second, burst the most at once."""
    rules: dict[tuple[str, str], tuple[str, str, float, float]] = {}
    for part in filter(None, (p.strip() for p in raw.split(","))):
        key, sep, amounts = part.partition("=")
        scope, colon, what = key.strip().partition(":")
        rate, slash, burst = amounts.partition("/")
        if not (sep and colon and slash) or scope not in RATE_SCOPES or not what.strip():
            raise ValueError
        rate_value, burst_value = float(rate), float(burst)
        if not 0 < rate_value <= 1e9 or not 1 <= burst_value <= 1e9:
            raise ValueError
        rules[(scope, what.strip())] = (scope, what.strip(), rate_value, burst_value)
    return tuple(rules.values())
