"""Channel specs: how clients reach an entity kind through the gateway, declared by the kind.

A kind that has a topic sets ``channel = Channel(...)`` and the gateway routes by it (like a
Phoenix channel's ``join``/``handle_in``): which content field names the entity, which
message joins, opens, leaves or creates it, who may follow its topic, and which client
messages pass straight to it. The gateway fills a message's ``user`` from the token,
``device`` from the socket and ``ip`` from the client's address; the client may not send
them. Only what needs the gateway's own resources (storage reads, uploads) is written by hand
in ``serve/``.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any

from actors.messages import Message
from rthub.errors import BadRequest, NotFound

ENTITY_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")  # a room's, party's or playlist's id
TOPIC_MAX = 200
GATEWAY_FIELDS = ("user", "device", "ip")  # filled by the gateway, never by the client


@dataclass(frozen=True)
class Channel:
    """The gateway side of one entity kind.

    * ``id_field``: the content field naming the entity (``room``); ``<id_field>_id`` names
      a new one in ``create``.
    * ``authorize``: asked before a socket may follow the topic; without it only the topic's
      own user may (``own``: the ``user:<id>`` topic).
    * ``create``: creates the entity (a random id when none is given), then follows.
      ``join``: asked, then follows (a join decides membership). ``open``: authorized,
      followed, then asked (a read: every change after its answer arrives live).
      ``leave``: asked, then the socket stops following.
    * ``direct``: messages passed straight to the entity, pipelined (their whole effect is
      that one message).
    * ``presence``: each socket following the topic is a device of its user there.
    """

    kind: str
    id_field: str
    topic: str = ""  # the topic prefix, when it is not the kind's name
    authorize: type[Message] | None = None
    own: bool = False
    create: type[Message] | None = None
    join: type[Message] | None = None
    open: type[Message] | None = None
    leave: type[Message] | None = None
    direct: tuple[type[Message], ...] = ()
    presence: bool = False

    @property
    def prefix(self) -> str:
        return self.topic or self.kind

    def messages(self) -> list[type[Message]]:
        """Every message the gateway routes to the kind by this spec."""
        named = (self.authorize, self.create, self.join, self.open, self.leave)
        return [m for m in (*named, *self.direct) if m is not None]

    def entity_id(self, content: dict[str, Any], new: bool = False) -> str:
        """The entity named in ``content``, checked; with ``new`` (a create) the
        ``<id_field>_id`` field, or a random id when the client gave none."""
        field = f"{self.id_field}_id" if new else self.id_field
        ident = content.get(field)
        if new and not ident:
            return secrets.token_urlsafe(9)
        return check_id(ident, field)


CHANNELS: dict[str, Channel] = {}  # by topic prefix; filled as kinds are defined
PREFIXES: dict[str, str] = {}  # kind -> its topic prefix, where it is not the kind's name


def register(channel: Channel) -> None:
    """Called by ``Entity.__init_subclass__`` for a kind that declares a channel."""
    known = CHANNELS.get(channel.prefix)
    if known is not None and known.kind != channel.kind:
        raise TypeError(f"topic prefix {channel.prefix!r} is both {known.kind}'s and "
                        f"{channel.kind}'s")
    CHANNELS[channel.prefix] = channel
    if channel.prefix != channel.kind:
        PREFIXES[channel.kind] = channel.prefix


def topic_names() -> str:
    """The topics there are, for an error (the user's own last): ``room:<id>, ...``."""
    ordered = sorted(CHANNELS.values(), key=lambda c: c.own)
    return ", ".join(f"{c.prefix}:<id>" for c in ordered)


def check_id(ident: Any, field: str) -> str:
    if not isinstance(ident, str) or not ENTITY_ID.match(ident):
        raise BadRequest(f"'{field}' must be 1 to 128 letters, digits or '_.:-'")
    return ident


def split_topic(topic: Any) -> tuple[Channel, str]:
    """The channel and entity id of ``room:<id>`` (any declared prefix), or ``not_found``
    naming the topics there are."""
    prefix, _, ident = topic.partition(":") if isinstance(topic, str) else ("", "", "")
    channel = CHANNELS.get(prefix)
    if channel is None or not ident or len(topic) > TOPIC_MAX:
        raise NotFound(f"no topic {str(topic)[:50]!r}: follow one of {topic_names()} "
                       f"(at most {TOPIC_MAX} characters)")
    return channel, ident


def gateway_payload(message: type[Message], content: dict[str, Any], drop: str,
                    user: str, device: str, ip: str) -> Message:
    """``message`` from a client's content: the entity's id field out, the client's names
    mapped to the message's (``wire``), and the fields only the gateway knows filled in."""
    payload: dict[str, Any] = {}
    renamed = message.wire
    for name, value in content.items():
        if name == drop:
            continue
        field = renamed.get(name, name)
        if field in GATEWAY_FIELDS:
            raise BadRequest(f"'{name}' comes from your token or connection; do not send it")
        payload[field] = value
    takes = message.gateway_fields()
    payload["user"] = user
    if "device" in takes:
        payload["device"] = device
    if "ip" in takes:
        payload["ip"] = ip
    return message.decode(message.from_wire(payload))
