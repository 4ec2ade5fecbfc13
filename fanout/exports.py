"""The family streams other services consume (``rthub.event_catalog``), written by fan-out.

Events of the four families are not a second source of truth: the durable ones are derived
from the topic events an entity committed (``party.state`` with ``action: skip`` is
``music.skip``), and leave in the same pipeline as the topic's ``XADD``, so they go through the
outbox like every stream event: an event the hub did not commit is never exported, and one it
did is exported once its host (or, after a crash, the next) publishes it.

Exactly once, per topic: a republished batch must not export twice. ``SCRIPT`` keeps the last
exported ``seq`` of each topic (``rthub:xp:{tenant:family}:<topic>``, a day's TTL, far past any
outbox row's life) and skips what it has, in the script that appends: no window between the two.
Ephemeral events (typing, presence) and the gateways' ``system.*`` events are not durable in
the hub and are exported at most once.

Keys: ``rthub:x:{tenant:family}`` the stream, trimmed to about ``maxlen`` entries and to
``max_age_s`` (``MINID``) each time it is written, so a consumer that stops reading costs the
hub nothing: it finds the oldest entries gone (``client.events`` reports it) and the lag alert
fires (``rthub_events_consumer_lag``).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson
from hiredis import pack_command
from redis.asyncio.cluster import RedisCluster

from rthub.event_catalog import FAMILIES, SCHEMAS

PLAYBACK = ("play", "pause", "skip", "seek", "volume_change")
_EDITS = {"insert": "add", "remove": "remove", "move": "reorder", "reset": "edit"}
POSITION_TTL_S = 86_400
_VERSIONS = {name: str(schema.version) for name, schema in SCHEMAS.items()}

# KEYS[1] the stream; ARGV[1] maxlen, ARGV[2] min id ("0": no age bound), ARGV[3] position
# key prefix, then 8 per event: topic, seq ("" ephemeral), type, v, id, tenant, ts, data.
SCRIPT = """
local added, last, moved = 0, {}, {}
for i = 4, #ARGV, 8 do
  local topic, seq = ARGV[i], ARGV[i + 1]
  local fresh = true
  if seq ~= '' then
    local seen = last[topic]
    if seen == nil then seen = tonumber(redis.call('GET', ARGV[3] .. topic) or '0') end
    if tonumber(seq) <= seen then fresh = false
    else last[topic] = tonumber(seq); moved[topic] = seq end
  end
  if fresh then
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'type', ARGV[i + 2],
               'v', ARGV[i + 3], 'id', ARGV[i + 4], 'tenant', ARGV[i + 5], 'topic', topic,
               'seq', seq, 'ts', ARGV[i + 6], 'data', ARGV[i + 7])
    added = added + 1
  end
end
for topic, seq in pairs(moved) do
  redis.call('SET', ARGV[3] .. topic, seq, 'EX', POSITION_TTL_S)
end
if ARGV[2] ~= '0' then redis.call('XTRIM', KEYS[1], 'MINID', '~', ARGV[2]) end
return added
""".replace("POSITION_TTL_S", str(POSITION_TTL_S))


def _tag(tenant: str, family: str) -> str:
    return "{" + f"{tenant}:{family}" + "}"


def family_key(tenant: str, family: str) -> str:
    """The stream of one tenant's family (its keys share a Redis Cluster slot)."""
    return f"rthub:x:{_tag(tenant, family)}"


def position_prefix(tenant: str, family: str) -> str:
    return f"rthub:xp:{_tag(tenant, family)}:"


@dataclass(frozen=True, slots=True)
class Policy:
    """Which families are exported and how long their streams are kept."""

    families: frozenset[str] = frozenset(FAMILIES)
    maxlen: int = 100_000
    max_age_s: float = 86_400.0


def export_policy(settings: Any) -> Policy | None:
    """The policy ``settings`` (``rthub.config.Settings``) ask for; None: nothing exported."""
    if not settings.event_families:
        return None
    return Policy(settings.event_families, settings.events_maxlen, settings.events_retention_s)


def derive(event_type: str, content: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """The family event a topic event makes, or None (most topic events make none)."""
    if event_type == "party.state":
        action = content.get("action")
        if action not in PLAYBACK:
            return None  # a state without a control (a host handover): not a user's act
        data = {k: content.get(k) for k in ("party", "by", "track", "item_id", "position_ms",
                                            "playing", "volume", "at_server_ms")}
        if action == "skip":
            data["skipped"] = content.get("skipped")
            data["skipped_at_ms"] = content.get("skipped_at_ms", 0)
        return f"music.{action}", data
    if event_type == "chat.message":
        return "chat.message", {k: content.get(k) for k in
                                ("room", "message_id", "sender", "text", "attachments",
                                 "reply_to", "seq") if k in content}
    if event_type == "chat.typing":
        return "chat.typing", dict(content)
    if event_type == "chat.read":
        return "chat.read_receipt", {"room": content.get("room"), "user": content.get("user"),
                                     "seq": content.get("seq")}
    if event_type in ("presence.join", "presence.leave"):
        return "chat.presence", {**content, "status": event_type.rpartition(".")[2]}
    if event_type == "playlist.op":
        op = content.get("op")
        if not op:
            return None  # a version with nothing left of the op
        verb, body = next(iter(op.items()))
        name = _EDITS.get(verb)
        if name is None:
            return None
        base = {"playlist": content.get("playlist"), "version": content.get("version"),
                "author": content.get("author")}
        return f"collaboration.{name}", {**base, **body}
    if event_type == "playlist.shared":
        return "collaboration.share", dict(content)
    return None


@dataclass(slots=True)
class Batch:
    """The exports of one tenant's family in a publish batch: one script call."""

    tenant: str
    family: str
    args: list[Any]

    @property
    def key(self) -> str:
        return family_key(self.tenant, self.family)

    def append(self, topic: str, seq: str, event_type: str, event_id: str, ts_ms: int,
               data: Mapping[str, Any]) -> None:
        """One entry's script arguments (``SCRIPT``'s eight per event)."""
        self.args.extend((topic, seq, event_type, _VERSIONS[event_type], event_id, self.tenant,
                          str(ts_ms), orjson.dumps(data)))


def collect(events: Iterable[Any], policy: Policy) -> list[tuple[Batch, list[Any]]]:
    """Group the family events ``events`` (``fanout.streams.StreamEvent``) make by stream,
    each with the events it covers (if its script fails, they are published again)."""
    groups: dict[tuple[str, str], tuple[Batch, list[Any]]] = {}
    for event in events:
        derived = derive(event.type, event.content)
        if derived is None:
            continue
        event_type, data = derived
        family = SCHEMAS[event_type].family
        if family not in policy.families:
            continue
        batch, covered = groups.get((event.tenant, family)) or groups.setdefault(
            (event.tenant, family), (Batch(event.tenant, family, []), []))
        seq = "" if event.seq is None else str(event.seq)
        event_id = (f"{event.topic}#{seq}" if seq
                    else f"{event.topic}~{secrets.token_hex(6)}")
        batch.append(event.topic, seq, event_type, event_id, event.ts_ms, data)
        covered.append(event)
    return list(groups.values())


def command(batch: Batch, policy: Policy, now_ms: int | None = None) -> bytes:
    """The packed ``EVAL`` that appends a batch (EVAL, not EVALSHA: a restarted Redis has no
    script cache, and the body is short)."""
    return pack_command(("EVAL", SCRIPT, *arguments(batch, policy, now_ms)))


def arguments(batch: Batch, policy: Policy, now_ms: int | None) -> tuple[Any, ...]:
    """``SCRIPT``'s keys and arguments for ``batch``, trimming by age as of ``now_ms``."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    min_id = f"{max(0, now_ms - int(policy.max_age_s * 1000))}-0" if policy.max_age_s else "0"
    return (1, batch.key, policy.maxlen, min_id, position_prefix(batch.tenant, batch.family),
            *batch.args)


class Fact(NamedTuple):
    """An event made outside an entity (a gateway's ``system.*``, ops' maintenance), with its
    id and time fixed when it happened: a retried append keeps both."""

    tenant: str
    type: str
    data: Mapping[str, Any]
    ts_ms: int
    id: str
    topic: str = ""


def fact_batches(facts: Iterable[Fact], policy: Policy) -> list[Batch]:
    """``facts`` grouped by stream (one script each), those of families not exported left out."""
    groups: dict[tuple[str, str], Batch] = {}
    for fact in facts:
        family = SCHEMAS[fact.type].family
        if family not in policy.families:
            continue
        batch = groups.get((fact.tenant, family)) or groups.setdefault(
            (fact.tenant, family), Batch(fact.tenant, family, []))
        batch.append(fact.topic, "", fact.type, fact.id, fact.ts_ms, fact.data)
    return list(groups.values())


async def export_many(client: Any, facts: Sequence[Fact], policy: Policy) -> int:
    """Append ``facts`` in one round trip (a pipeline of one script per tenant's family; on a
    cluster one call per stream, to its slot's node, at once); how many were appended. At
    most once per fact only if the caller gives up on an error: a retry after a reply was
    lost appends again, under the same ``id``."""
    found = fact_batches(facts, policy)
    if not found:
        return 0
    if isinstance(client, RedisCluster):
        added = await asyncio.gather(*(client.eval(SCRIPT, *arguments(batch, policy, None))
                                       for batch in found))
    else:
        pipe = client.pipeline(transaction=False)
        for batch in found:
            pipe.eval(SCRIPT, *arguments(batch, policy, None))
        added = await pipe.execute()
    return sum(int(n) for n in added)


async def export(client: Any, tenant: str, event_type: str, data: Mapping[str, Any],
                 policy: Policy, topic: str = "", event_id: str | None = None) -> None:
    """Append one event made outside an entity straight to its stream; at most once (nothing
    in the hub keeps it)."""
    event_id = event_id or f"{event_type}~{secrets.token_hex(8)}"
    await export_many(client, [Fact(tenant, event_type, data, int(time.time() * 1000),
                                    event_id, topic)], policy)


def streams_of(keys: Sequence[bytes | str]) -> list[tuple[str, str]]:
    """(tenant, family) of each family stream key (``rthub:x:{t:f}``), others left out."""
    found = []
    for key in keys:
        text = key.decode() if isinstance(key, bytes) else key
        if text.startswith("rthub:x:{") and text.endswith("}"):
            tenant, _, family = text[len("rthub:x:{"):-1].rpartition(":")
            if family in FAMILIES:
                found.append((tenant, family))
    return found
