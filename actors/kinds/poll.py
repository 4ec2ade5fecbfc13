"""Poll: a question with options that a tenant's users vote on live ("which genre next?").

The smallest whole kind, and the README's example of adding one: its messages, events,
state, handlers, appliers and channel spec are this file; the gateway routes ``poll.create``,
``poll.open``, ``poll.vote`` and ``poll.close`` from the spec, and ``poll:<id>`` streams
``poll.counts`` and ``poll.closed``. Anyone of the tenant may follow and vote, once each
(a second vote moves theirs); only its creator closes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from actors.channels import Channel
from actors.entity import Context, Entity, applies, handles
from actors.messages import Event, Message
from rthub.errors import BadRequest, Conflict, Forbidden, NotFound

MAX_OPTIONS = 10


@dataclass(frozen=True, slots=True)
class Create(Message):
    type: ClassVar[str] = "poll.create"
    user: str
    question: str
    options: list[str]


@dataclass(frozen=True, slots=True)
class Open(Message):
    type: ClassVar[str] = "poll.open"
    user: str


@dataclass(frozen=True, slots=True)
class Authorize(Message):
    type: ClassVar[str] = "poll.authorize"
    user: str


@dataclass(frozen=True, slots=True)
class Vote(Message):
    type: ClassVar[str] = "poll.vote"
    user: str
    option: int


@dataclass(frozen=True, slots=True)
class Close(Message):
    type: ClassVar[str] = "poll.close"
    user: str


@dataclass(frozen=True, slots=True)
class Created(Event):
    question: str
    options: list[str]
    owner: str


@dataclass(frozen=True, slots=True)
class Voted(Event):
    user: str
    option: int
    seq: int


@dataclass(frozen=True, slots=True)
class Closed(Event):
    seq: int


class Poll(Entity):
    kind = "poll"
    streams = True
    channel = Channel("poll", "poll", authorize=Authorize, create=Create, open=Open,
                      direct=(Vote, Close))
    messages = (Create, Open, Authorize, Vote, Close)
    events = (Created, Voted, Closed)
    __slots__ = ()

    @dataclass(slots=True)
    class State:
        question: str = ""
        options: list[str] = field(default_factory=list)
        owner: str = ""
        votes: dict[str, int] = field(default_factory=dict)  # user -> option index
        closed: bool = False
        seq: int = 0

    def view(self) -> dict:
        s = self.state
        counts = [0] * len(s.options)
        for option in s.votes.values():
            counts[option] += 1
        return {"poll": self.key[2], "question": s.question, "options": s.options,
                "counts": counts, "closed": s.closed}

    def _existing(self) -> None:
        if not self.state.owner:
            raise NotFound(f"poll {self.key[2]!r} does not exist")

    @handles(Create)
    def create(self, msg: Create, ctx: Context) -> None:
        if self.state.owner:
            raise Conflict(f"poll {self.key[2]!r} already exists")
        if not 1 <= len(msg.question.strip()) <= 300:
            raise BadRequest("question must be 1 to 300 characters")
        if not 2 <= len(msg.options) <= MAX_OPTIONS or not all(
                1 <= len(o.strip()) <= 100 for o in msg.options):
            raise BadRequest(f"options must be 2 to {MAX_OPTIONS} texts of 1 to 100 characters")
        ctx.emit(Created(msg.question, msg.options, msg.user))
        ctx.reply({"poll_id": self.key[2]})

    @handles(Authorize)
    def authorize(self, msg: Authorize, ctx: Context) -> None:
        self._existing()  # a tenant's polls are open to its users
        ctx.reply({"seq": self.state.seq})

    @handles(Open)
    def open(self, msg: Open, ctx: Context) -> None:
        self._existing()
        ctx.reply(self.view())

    @handles(Vote)
    def vote(self, msg: Vote, ctx: Context) -> None:
        self._existing()
        if self.state.closed:
            raise Conflict("the poll is closed")
        if not 0 <= msg.option < len(self.state.options):
            raise BadRequest(f"option must be from 0 to {len(self.state.options) - 1}")
        if self.state.votes.get(msg.user) != msg.option:
            counts = self.view()["counts"]
            if msg.user in self.state.votes:
                counts[self.state.votes[msg.user]] -= 1
            counts[msg.option] += 1
            seq = ctx.stream("poll.counts", {"poll": self.key[2], "counts": counts})
            ctx.emit(Voted(msg.user, msg.option, seq))
        ctx.reply({"option": msg.option})

    @handles(Close)
    def close(self, msg: Close, ctx: Context) -> None:
        self._existing()
        if msg.user != self.state.owner:
            raise Forbidden("only the poll's creator may close it")
        if not self.state.closed:
            seq = ctx.stream("poll.closed", {"poll": self.key[2],
                                             "counts": self.view()["counts"]})
            ctx.emit(Closed(seq))
        ctx.reply({"closed": True})

    @applies(Created)
    def _created(self, ev: Created) -> None:
        self.state.question, self.state.options, self.state.owner = (
            ev.question, ev.options, ev.owner)

    @applies(Voted)
    def _voted(self, ev: Voted) -> None:
        self.state.votes[ev.user] = ev.option
        self.state.seq = ev.seq

    @applies(Closed)
    def _closed(self, ev: Closed) -> None:
        self.state.closed, self.state.seq = True, ev.seq
