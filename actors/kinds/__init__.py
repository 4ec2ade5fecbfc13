"""Entity kinds, by wire name. A host can run every kind listed here."""

from actors.entity import Entity
from actors.kinds.chat_room import ChatRoom
from actors.kinds.inbox import Inbox
from actors.kinds.party import ListeningParty
from actors.kinds.playlist import Playlist
from actors.kinds.poll import Poll
from actors.kinds.user_session import UserSession

KINDS: dict[str, type[Entity]] = {cls.kind: cls for cls in (UserSession, ChatRoom, Playlist,
                                                         ListeningParty, Poll, Inbox)}
