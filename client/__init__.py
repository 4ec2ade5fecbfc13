"""The Python client SDK of rthub (distribution ``rthub-client``): ``Hub`` keeps a session
with the hub across drops; ``PlaylistEditor``, ``PartyClient`` and ``Inbox`` build on it;
``PlaylistDoc`` and ``ClockEstimator`` are the sans-I/O cores; ``client.events`` (with the
``events`` extra, redis-py) reads the hub's event streams."""

from client.clock import ClockEstimator, now_ms
from client.hub import Hub, Subscription
from client.inbox import Inbox
from client.party import PartyClient, PartyScheduler
from client.playlist import PlaylistDoc
from client.playlist_editor import PlaylistEditor
from client.requests import HubError

__all__ = ["ClockEstimator", "Hub", "HubError", "Inbox", "PartyClient", "PartyScheduler",
           "PlaylistDoc", "PlaylistEditor", "Subscription", "now_ms"]
