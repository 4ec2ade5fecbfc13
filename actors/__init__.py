"""Virtual actors on Ray: entities (user sessions, rooms, parties, playlists) hosted many per
Ray actor, placed by hash, durable in Postgres.

Public surface: ``ActorSystem`` / ``EntityRef`` to talk to entities; ``Entity``, ``Context``,
``handles``, ``applies``, ``Message``, ``Event`` to write an entity kind.
"""

from actors.context import Context, EntityKey
from actors.entity import Deactivation, Entity, applies, handles
from actors.messages import Event, Message

__all__ = ["Context", "Deactivation", "Entity", "EntityKey", "Event", "Message", "applies",
           "handles"]
