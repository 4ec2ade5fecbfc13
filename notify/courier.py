"""The courier: delivers one claimed notification to its channels (the dispatcher's
``deliver``), and records each channel's outcome.

In-app first (the user's inbox entity, idempotent by id). Then, if the notification has
other channels, the user's preferences and targets decide (``notify.routing``): what goes
now, what is skipped and why, what waits for the end of quiet hours or for a digest. A
provider's retryable failure keeps its channel queued and brings the notification back after
a backoff with full jitter (or the provider's ``Retry-After``), up to ``MAX_ATTEMPTS`` per
channel; a final one fails that channel and the fallback chain moves on. A dead token or
subscription is pruned from the registry. Only channels still ``queued`` are ever sent, so a
retry never repeats a channel that went out.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

import actors.kinds.inbox_prefs as prefs_of
from actors.kinds.inbox import Deliver, Profile
from notify import digest as digests
from notify import routing
from notify.dispatcher import BACKOFF_CAP_S, Later, backoff_s, retryable
from notify.providers.base import Note, Provider, ProviderError, Target
from notify.templates import Templates
from rthub.errors import HubError
from storage import notifications as store
from storage import notify_targets as targets_store

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8  # per channel
LEASE_S = 60.0
AskInbox = Callable[[str, str, Any], Awaitable[Any]]  # (tenant, user, message) -> reply
NOTHING = {"push": "no device registered", "email": "no email address registered",
           "sms": "no phone number registered"}


@dataclass(slots=True)
class Outcome:
    """One channel's send: ``ok``, or why not and whether to try again."""

    ok: bool
    error: str | None = None
    retry: bool = False
    retry_after_s: float | None = None


class Courier:
    """``await courier(row)``: None when every channel is settled, else ``Later``."""

    def __init__(self, ask_inbox: AskInbox, pool: asyncpg.Pool, providers: list[Provider],
                 templates: Templates, rng: random.Random | None = None,
                 digest_limit: int = 100) -> None:
        self.ask_inbox = ask_inbox
        self.pool = pool
        self.by_kind = {kind: p for p in providers for kind in p.kinds}
        self.by_channel = {p.channel: p for p in providers if not p.kinds}
        self.served = {p.channel for p in providers}
        self.templates = templates
        self.rng = rng or random.Random()
        self.digest_limit = digest_limit  # MESSAGE_BATCH_SIZE: notifications in one digest
        self.outcomes: Counter[tuple[str, str]] = Counter()  # (channel, state) -> count
        self.pruned = 0

    async def __call__(self, row: dict[str, Any]) -> Later | None:
        states = {c: v[0] for c, v in row["channels"].items()}
        externals = [c for c in routing.EXTERNAL if states.get(c) == "queued"]
        if row["digest_key"]:
            return await self._digest(row)
        prefs: dict[str, Any] = {}
        if externals:
            prefs = (await self.ask_inbox(row["tenant"], row["user_id"], Profile()))["stored"]
        wait = prefs_of.digested(prefs, row["category"], row["priority"]) if externals else None
        if states.get("in_app") == "queued":
            await self._in_app(row, silent=wait is not None)
        if not externals:
            return None
        if wait is not None:
            key, due_ms = digests.slot(row["user_id"], row["category"], wait,
                                       prefs.get("timezone"), _now_ms())
            await store.digest_into(self.pool, row["tenant"], row["id"], key, due_ms)
            return Later(0, "in a digest", handled=True)
        note = Note(row["id"], row["tenant"], row["user_id"], row["title"], row["body"],
                    row["priority"], row["category"], row["data"])
        tries = {c: v[1] for c, v in row["channels"].items()}
        return await self._externals(note, [row["id"]], states, tries, prefs)

    async def _in_app(self, row: dict[str, Any], silent: bool) -> None:
        """The user's inbox. A failure worth retrying is raised (the dispatcher retries the
        whole notification; nothing else went out yet); any other fails this channel."""
        try:
            await self.ask_inbox(row["tenant"], row["user_id"], Deliver(
                row["id"], row["category"], row["priority"], row["title"], row["body"],
                row["data"], row["created_ms"], silent))
            self.outcomes["in_app", "delivered"] += 1
        except HubError as exc:
            if retryable(exc):
                raise
            await self._record([row["id"]], row["tenant"], "in_app", "failed", str(exc))

    async def _externals(self, note: Note, ids: list[str], states: dict[str, str],
                         tries: dict[str, int], prefs: dict[str, Any]) -> Later | None:
        found = await targets_store.of_users(self.pool, note.tenant, [note.user_id])
        reach = [Target(t["kind"], t["address"], t["app"], t["data"])
                 for t in found.get(note.user_id, ()) if t["kind"] in self.by_kind]
        unreachable = {c: "no provider configured" for c in routing.EXTERNAL
                       if c not in self.served}
        for channel in routing.CHAIN:
            if channel in self.served and not self._targets(channel, reach):
                unreachable[channel] = NOTHING[channel]
        while True:
            plan = routing.plan(note.priority, note.category, states, prefs, unreachable,
                                _now_ms())
            for channel in plan.skip:
                states[channel] = "skipped"
            await self._record_many(ids, note.tenant, [(c, "skipped", why)
                                                       for c, why in plan.skip.items()])
            if plan.wait_until_ms is not None:
                return Later(max(0.0, plan.wait_until_ms / 1000 - time.time()), "quiet hours",
                             counted=False)
            if not plan.send:
                return None
            outcomes = await asyncio.gather(*(self._send(c, note, self._targets(c, reach))
                                              for c in plan.send))
            delays = []
            for channel, outcome in zip(plan.send, outcomes, strict=True):
                if outcome.ok:
                    states[channel] = "sent"
                    await self._record(ids, note.tenant, channel, "sent")
                    continue
                if outcome.retry:
                    tries[channel] = await store.tried(self.pool, note.tenant, ids[0], channel,
                                                       outcome.error or "")
                    if tries[channel] < MAX_ATTEMPTS:
                        delays.append(outcome.retry_after_s or backoff_s(tries[channel],
                                                                         self.rng))
                        continue
                states[channel] = "failed"
                await self._record(ids, note.tenant, channel, "failed", outcome.error)
            if delays:  # the others are settled; these come back
                return Later(min(min(delays), BACKOFF_CAP_S), "a provider asked to retry",
                             counted=False)

    def _targets(self, channel: str, reach: list[Target]) -> list[Target]:
        return [t for t in reach if self.by_kind[t.kind].channel == channel]

    async def _send(self, channel: str, note: Note, targets: list[Target]) -> Outcome:
        """Every target of the channel at once: sent if one took it; dead ones pruned."""
        if channel in self.by_channel:
            return await self._one(self.by_channel[channel], None, note)
        outcomes = await asyncio.gather(*(self._one(self.by_kind[t.kind], t, note)
                                          for t in targets))
        if any(o.ok for o in outcomes):
            await targets_store.used(self.pool, note.tenant, [
                (t.kind, t.address) for t, o in zip(targets, outcomes, strict=True) if o.ok])
            return Outcome(True)
        retry = [o for o in outcomes if o.retry]
        return Outcome(False, "; ".join(o.error or "" for o in outcomes), bool(retry),
                       min((o.retry_after_s or 0 for o in retry), default=None) or None)

    async def _one(self, provider: Provider, target: Target | None, note: Note) -> Outcome:
        try:
            await provider.send(target, note)
            return Outcome(True)
        except ProviderError as exc:
            reason = f"{provider.name}: {exc.code + ': ' if exc.code else ''}{exc}"
            if exc.dead_target and target is not None:
                self.pruned += 1
                log.info("pruning dead %s target of %s: %s", target.kind, note.user_id, exc)
                await targets_store.prune(self.pool, note.tenant, target.kind, target.address)
            return Outcome(False, reason, exc.retryable and not exc.dead_target,
                           exc.retry_after_s)
        except Exception as exc:  # an adapter's bug must not stop the dispatcher
            log.exception("%s failed unexpectedly", provider.name)
            return Outcome(False, f"{provider.name}: {type(exc).__name__}: {exc}")

    async def _record(self, ids: list[str], tenant: str, channel: str, state: str,
                      error: str | None = None) -> None:
        await self._record_many(ids, tenant, [(channel, state, error)])

    async def _record_many(self, ids: list[str], tenant: str,
                           changes: list[tuple[str, str, str | None]]) -> None:
        """Channel states of ``ids``, in one statement: ``(channel, state, error)``."""
        if not changes:
            return
        at_ms = _now_ms()
        for channel, state, _ in changes:
            self.outcomes[channel, state] += len(ids)
        async with self.pool.acquire() as conn:
            await store.set_delivery(conn, [
                {"tenant": tenant, "id": i, "channel": channel, "state": state, "error": error,
                 "at_ms": at_ms} for channel, state, error in changes for i in ids])

    async def _digest(self, row: dict[str, Any]) -> Later | None:
        """A digest came due: every notification in it goes out as one message, and each
        one's channels end as the digest's did."""
        members = await store.digest_members(self.pool, row["tenant"], row["digest_key"],
                                             LEASE_S, self.digest_limit)
        if not members:
            return None
        profile = await self.ask_inbox(row["tenant"], row["user_id"], Profile())
        title, body = digests.compose([m["title"] for m in members], self.templates,
                                      profile["locale"])
        first = members[0]
        note = Note(f"digest-{first['id']}", row["tenant"], row["user_id"], title, body,
                    max(m["priority"] for m in members), row["category"],
                    {"digest": [m["id"] for m in members]})
        states = {c: v[0] for c, v in first["channels"].items()}
        tries = {c: v[1] for c, v in first["channels"].items()}
        ids = [m["id"] for m in members]
        later = await self._externals(note, ids, states, tries, profile["stored"])
        others = [m["id"] for m in members if m["id"] != row["id"]]
        if later is not None:
            for ident in others:
                await store.retry_at(self.pool, row["tenant"], ident, later.delay_s, None,
                                     counted=False)
            return later
        if others:
            await store.finish_many(self.pool, [(row["tenant"], i) for i in others])
        if row["id"] not in ids:  # past MESSAGE_BATCH_SIZE: in the digest's next part
            return Later(0, "in the next part of its digest")
        return None


def _now_ms() -> int:
    return int(time.time() * 1000)
