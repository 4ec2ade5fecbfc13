"""What a room's members post: messages, edits, deletions, read receipts and typing (a mixin
of ``ChatRoom``).

A send is idempotent by ``client_msg_id`` (``Send.idempotent``), spends from the sender's
token bucket (CHAT_RATE a second, CHAT_BURST at once), and takes the next ``seq`` of the
room's stream; its text goes to the sealed projection, never into the log. Typing shows at
most once per ``TYPING_THROTTLE_MS`` per user and expires after ``TYPING_EXPIRES_MS``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from actors.entity import Context, applies, handles
from actors.kinds.chat_events import (
    Deleted,
    Edited,
    Posted,
    ReadUpTo,
    Spent,
    TypingState,
    iso,
    message_view,
)
from actors.kinds.chat_types import Delete, Edit, Read, Send, Typing, TypingTimer
from actors.messages import request_key
from rthub.bucket import TokenBucket
from rthub.errors import BadRequest, Forbidden, NotFound

REMEMBERED = 1000  # deletions remembered
TYPING_THROTTLE_MS = 2000  # at most one typing event per user per room in this time
TYPING_EXPIRES_MS = 6000


class Messages:
    """The posting half of a room; membership is the ``Members`` mixin's."""

    __slots__ = ()
    state_needs: ClassVar[tuple[str, ...]] = (
        "seq", "search", "reads", "deleted", "typing", "buckets", "replies")
    kind_provides: ClassVar[tuple[str, ...]] = ("room_id", "_role", "_stream")
    state: Any

    @handles(Send)
    def send(self, msg: Send, ctx: Context) -> None:
        self._role(msg.user)
        if not msg.client_msg_id or len(msg.client_msg_id) > 64:
            raise BadRequest("client_msg_id must be 1 to 64 characters")
        limits = ctx.settings
        if not msg.text.strip() and not msg.attachments:
            raise BadRequest("a message needs text or attachments")
        if len(msg.text) > limits.chat_max_text:
            raise BadRequest(f"text is {len(msg.text)} characters; the limit is "
                             f"{limits.chat_max_text}")
        if len(msg.attachments) > limits.chat_max_attachments:
            raise BadRequest(f"{len(msg.attachments)} attachments; the limit is "
                             f"{limits.chat_max_attachments}")
        self._spend(msg.user, ctx)
        seq = ctx.next_seq  # the message's view names its own seq
        message_id = ctx.new_token(12)
        attachments = list(dict.fromkeys(msg.attachments))
        ctx.stream("chat.message", message_view(self.room_id, message_id, msg.user, msg.text,
                                                seq, ctx.now_ms, msg.reply_to, attachments))
        ctx.emit(Posted(message_id, seq, msg.user, msg.client_msg_id, msg.reply_to,
                        attachments, self.state.search, ctx.now_ms, msg.text))
        if self.state.typing.get(msg.user, [False, 0, False])[2]:
            self._typing(msg.user, False, 0, ctx)  # sending ends typing
        ctx.reply({"message_id": message_id, "seq": seq})

    def _spend(self, user: str, ctx: Context) -> None:
        """A token bucket per user: CHAT_RATE a second, CHAT_BURST at once."""
        bucket = TokenBucket(ctx.settings.chat_rate, ctx.settings.chat_burst)
        tokens, at_ms = bucket.take(self.state.buckets.get(user), ctx.now_ms,
                                    "sending too fast in this room")
        ctx.emit(Spent(user, tokens, at_ms))

    def _editable(self, user: str, message_id: str, author: str) -> None:
        role = self._role(user)
        if message_id in self.state.deleted:
            raise NotFound(f"message {message_id!r} was deleted")
        if user != author and role == "member":
            raise Forbidden("only the author or a moderator may change this message")

    @handles(Edit)
    def edit(self, msg: Edit, ctx: Context) -> None:
        self._editable(msg.user, msg.message_id, msg.author)
        if not msg.text.strip():
            raise BadRequest("an edit needs text; delete the message instead")
        if len(msg.text) > ctx.settings.chat_max_text:
            raise BadRequest(f"text is {len(msg.text)} characters; the limit is "
                             f"{ctx.settings.chat_max_text}")
        seq = self._stream(ctx, "chat.edited", {"message_id": msg.message_id, "text": msg.text,
                                                "edited_by": msg.user, "ts": iso(ctx.now_ms)})
        ctx.emit(Edited(msg.message_id, seq, msg.user, self.state.search, ctx.now_ms, msg.ip,
                        msg.text))
        ctx.reply({"message_id": msg.message_id, "seq": seq})

    @handles(Delete)
    def delete(self, msg: Delete, ctx: Context) -> None:
        self._editable(msg.user, msg.message_id, msg.author)
        seq = self._stream(ctx, "chat.deleted", {"message_id": msg.message_id,
                                                 "deleted_by": msg.user})
        ctx.emit(Deleted(msg.message_id, seq, msg.user, ctx.now_ms, msg.ip))
        ctx.reply({"message_id": msg.message_id, "seq": seq})

    @handles(Read)
    def read(self, msg: Read, ctx: Context) -> None:
        self._role(msg.user)
        if not 0 < msg.seq <= self.state.seq:
            raise BadRequest(f"seq must be from 1 to the room's current seq {self.state.seq}")
        current = self.state.reads.get(msg.user, 0)
        if msg.seq > current:  # receipts only move forward
            seq = self._stream(ctx, "chat.read", {"user": msg.user, "seq": msg.seq})
            ctx.emit(ReadUpTo(msg.user, msg.seq, seq))
        ctx.reply({"room_id": self.room_id, "read_seq": max(current, msg.seq)})

    # -- typing --------------------------------------------------------------------------------
    @handles(Typing)
    def typing(self, msg: Typing, ctx: Context) -> None:
        self._role(msg.user)
        self._typing(msg.user, msg.typing, ctx.now_ms + TYPING_EXPIRES_MS if msg.typing else 0,
                     ctx)
        if msg.typing:
            ctx.schedule(TYPING_EXPIRES_MS / 1000, TypingTimer(msg.user))
        ctx.reply({})

    @handles(TypingTimer)
    def typing_timer(self, msg: TypingTimer, ctx: Context) -> None:
        entry = self.state.typing.get(msg.user)
        if entry is None:
            return
        wanted, expires = entry[2], entry[3]
        if wanted and expires <= ctx.now_ms:
            wanted, expires = False, 0
        self._typing(msg.user, wanted, expires, ctx, from_timer=True)

    def _typing(self, user: str, wanted: bool, expires_ms: int, ctx: Context,
                from_timer: bool = False) -> None:
        """Show ``wanted`` now if the user's last typing event is 2 s old, else once it is."""
        shown, shown_at, _, _, pending = self.state.typing.get(user, [False, 0, False, 0, False])
        if from_timer:
            pending = False
        if wanted != shown:
            wait_ms = shown_at + TYPING_THROTTLE_MS - ctx.now_ms
            if wait_ms <= 0:
                ctx.publish("chat.typing", {"room": self.room_id, "user": user,
                                            "typing": wanted})
                shown, shown_at = wanted, ctx.now_ms
            elif not pending:
                ctx.schedule(wait_ms / 1000, TypingTimer(user))
                pending = True
        ctx.emit(TypingState(user, [shown, shown_at, wanted, expires_ms, pending]))

    # -- appliers ---------------------------------------------------------------------------
    @applies(Posted)
    def _posted(self, ev: Posted) -> None:
        self.state.seq = ev.seq
        self.remember(request_key(ev.sender, ev.client_msg_id),
                      {"message_id": ev.message_id, "seq": ev.seq})

    @applies(Edited)
    def _edited(self, ev: Edited) -> None:
        self.state.seq = ev.seq

    @applies(Deleted)
    def _deleted(self, ev: Deleted) -> None:
        self.state.seq = ev.seq
        _remember(self.state.deleted, ev.message_id, None)

    @applies(ReadUpTo)
    def _read_up_to(self, ev: ReadUpTo) -> None:
        self.state.reads[ev.user] = ev.read_seq
        self.state.seq = ev.seq

    @applies(TypingState)
    def _typing_state(self, ev: TypingState) -> None:
        if not ev.state[0] and not ev.state[2] and not ev.state[4]:
            self.state.typing.pop(ev.user, None)
        else:
            self.state.typing[ev.user] = ev.state

    @applies(Spent)
    def _spent(self, ev: Spent) -> None:
        self.state.buckets[ev.user] = [ev.tokens, ev.at_ms]


def _remember(bounded: dict[str, Any], key: str, value: Any) -> None:
    bounded[key] = value
    while len(bounded) > REMEMBERED:
        del bounded[next(iter(bounded))]
