"""Family streams for other services: what the publish path exports, once, typed and trimmed;
and the SDK's consumer groups across a consumer's crash (real Redis, embedded and external)."""

from __future__ import annotations

import time
import uuid

import pytest
import redis.asyncio as aioredis

from client.events import EventConsumer
from fanout.exports import SCRIPT, Policy, arguments, collect, export, family_key
from fanout.streams import StreamEvent, publish
from rthub.event_catalog import FAMILIES, SCHEMAS, SchemaError, check, parse

PLAYBACK = {"party": "p1", "by": "olga", "track": {"id": "t2"}, "item_id": "i2",
            "position_ms": 0, "playing": True, "volume": 80, "at_server_ms": 5,
            "queue_version": 3}


def one_of_each(tenant: str) -> list[StreamEvent]:
    """A topic event for every durable exported type, ephemeral ones, and one exported as
    nothing (``room.joined``)."""
    made = [
        ("party:p1", "party.state", {**PLAYBACK, "action": "play"}),
        ("party:p1", "party.state", {**PLAYBACK, "action": "pause", "playing": False}),
        ("party:p1", "party.state", {**PLAYBACK, "action": "skip", "skipped": {"id": "t1"},
                                     "skipped_at_ms": 41_000}),
        ("party:p1", "party.state", {**PLAYBACK, "action": "seek", "position_ms": 9000}),
        ("party:p1", "party.state", {**PLAYBACK, "action": "volume_change", "volume": 20}),
        ("room:r1", "chat.message", {"room": "r1", "message_id": "m1", "sender": "olga",
                                     "text": "hi", "attachments": [], "seq": 1, "ts": "x"}),
        ("room:r1", "chat.read", {"room": "r1", "user": "bob", "seq": 1}),
        ("room:r1", "room.joined", {"room": "r1", "user": "bob"}),
        ("playlist:l1", "playlist.op", {"playlist": "l1", "version": 1, "author": "olga",
                                        "op": {"insert": {"index": 0, "track": {"id": "t1"},
                                                          "item_id": "i1"}}}),
        ("playlist:l1", "playlist.op", {"playlist": "l1", "version": 2, "author": "bob",
                                        "op": {"move": {"item_id": "i1", "to_index": 0}}}),
        ("playlist:l1", "playlist.op", {"playlist": "l1", "version": 3, "author": "bob",
                                        "op": None}),
        ("playlist:l1", "playlist.op", {"playlist": "l1", "version": 4, "author": "bob",
                                        "op": {"reset": {"items": [["i1", {"id": "t1"}]]}}}),
        ("playlist:l1", "playlist.op", {"playlist": "l1", "version": 5, "author": "bob",
                                        "op": {"remove": {"item_id": "i1"}}}),
        ("playlist:l1", "playlist.shared", {"playlist": "l1", "user": "eve", "role": "editor"}),
    ]
    seqs: dict[str, int] = {}
    events = []
    for topic, event_type, content in made:
        seqs[topic] = seqs.get(topic, 0) + 1
        events.append(StreamEvent(tenant, topic, seqs[topic], event_type, content, 1000))
    events.append(StreamEvent(tenant, "room:r1", None, "chat.typing",
                              {"room": "r1", "user": "bob", "typing": True}, 1000))
    events.append(StreamEvent(tenant, "room:r1", None, "presence.join",
                              {"room": "r1", "user": "bob", "name": "Bob"}, 1000))
    return events


async def exported(client: aioredis.Redis, tenant: str, family: str) -> list:
    return [parse(entry_id, fields)
            for entry_id, fields in await client.xrange(family_key(tenant, family))]


async def test_every_family_is_exported_typed_and_a_republished_batch_is_not_exported_twice(
        redis_client):
    tenant = f"t{uuid.uuid4().hex[:8]}"
    batch = one_of_each(tenant)
    await publish(redis_client, batch, 1000, Policy())
    await publish(redis_client, batch[:8], 1000, Policy())  # a host's retry: nothing again
    music = await exported(redis_client, tenant, "music")
    assert [e.type for e in music] == ["music.play", "music.pause", "music.skip",
                                       "music.seek", "music.volume_change"]
    assert [e.id for e in music] == [f"party:p1#{seq}" for seq in range(1, 6)]
    assert music[2].data["skipped"] == {"id": "t1"}
    assert music[2].data["skipped_at_ms"] == 41_000
    chat = await exported(redis_client, tenant, "chat")
    assert [e.type for e in chat] == ["chat.message", "chat.read_receipt", "chat.typing",
                                      "chat.presence"]
    assert chat[0].data["text"] == "hi"
    assert (chat[0].seq, chat[2].seq) == (1, None)
    assert chat[3].data["status"] == "join"
    collaboration = await exported(redis_client, tenant, "collaboration")
    assert [(e.type, e.data.get("version")) for e in collaboration] == [
        ("collaboration.add", 1), ("collaboration.reorder", 2), ("collaboration.edit", 4),
        ("collaboration.remove", 5), ("collaboration.share", None)]
    assert all(e.tenant == tenant and e.ts_ms == 1000 for e in music + chat + collaboration)


async def test_only_the_chosen_families_are_exported(redis_client):
    tenant = f"t{uuid.uuid4().hex[:8]}"
    await publish(redis_client, one_of_each(tenant), 1000, Policy(frozenset({"chat"})))
    assert len(await exported(redis_client, tenant, "chat")) == 4
    assert not await redis_client.exists(family_key(tenant, "music"),
                                         family_key(tenant, "collaboration"))


def test_every_type_has_a_family_a_version_and_a_schema_that_refuses_a_wrong_entry():
    assert {schema.family for schema in SCHEMAS.values()} == set(FAMILIES)
    assert all(schema.version >= 1 and schema.fields for schema in SCHEMAS.values())
    with pytest.raises(SchemaError, match=r"music\.skip v1: position_ms: expected integer, "
                                          r"got str; skipped_at_ms: missing"):
        check("music.skip", {**PLAYBACK, "position_ms": "0"})
    with pytest.raises(SchemaError, match=r"chat\.message v1: sender: missing"):
        check("chat.message", {"room": "r", "message_id": "m", "text": "", "attachments": []})
    with pytest.raises(SchemaError, match=r"unknown event type 'music\.rewind'"):
        check("music.rewind", {})


async def test_streams_are_trimmed_by_length_and_by_age_whatever_consumers_have_read(
        redis_client):
    """A consumer group that never reads does not keep anything: the hub trims regardless."""
    tenant = f"t{uuid.uuid4().hex[:8]}"
    key = family_key(tenant, "chat")
    await redis_client.xgroup_create(key, "asleep", id="0", mkstream=True)
    policy = Policy(maxlen=100, max_age_s=3600)
    reads = [StreamEvent(tenant, "room:r", seq, "chat.read", {"room": "r", "user": "u",
                                                             "seq": seq}, 1) for seq in
             range(1, 1001)]
    for start in range(0, 1000, 100):
        await publish(redis_client, reads[start:start + 100], 1000, policy)
    assert await redis_client.xlen(key) <= 200  # "~": whole nodes of 100 entries go
    # an hour later: everything older than the age bound goes (but the newest node)
    batch, _ = collect([StreamEvent(tenant, "room:r", 1001, "chat.read",
                                    {"room": "r", "user": "u", "seq": 1001}, 1)], policy)[0]
    hour_later = int(time.time() * 1000) + 3_600_000 + 60_000
    await redis_client.eval(SCRIPT, *arguments(batch, policy, hour_later))
    assert await redis_client.xlen(key) <= 101


async def test_a_consumer_group_reads_every_event_once_after_acks_across_a_consumer_crash(
        redis_url, redis_client):
    """Consumer a handles 30 events, acks 20 and dies; b takes over the 10 it held
    (XAUTOCLAIM) and reads the rest: every event is acked exactly once, and the only events
    handled twice are the 10 handled and not acked."""
    tenant = f"t{uuid.uuid4().hex[:8]}"
    sent = [StreamEvent(tenant, f"room:r{i % 7}", i // 7 + 1, "chat.read",
                        {"room": f"r{i % 7}", "user": "u", "seq": i}, 1) for i in range(100)]
    async with EventConsumer(redis_url, tenant, "chat", group="mod", consumer="a",
                             start="0", count=10) as a:
        await publish(redis_client, sent, 1000, Policy())
        handled_by_a = []
        async for event in a:
            handled_by_a.append(event)
            if len(handled_by_a) <= 20:
                await a.ack(event)
            if len(handled_by_a) == 30:
                break  # a dies holding 10
    acked = [e.id for e in handled_by_a[:20]]
    async with EventConsumer(redis_url, tenant, "chat", group="mod", consumer="b",
                             claim_idle_ms=0, count=10, block_ms=100) as b:
        handled_by_b = []
        async for event in b:
            handled_by_b.append(event)
            await b.ack(event)
            acked.append(event.id)
            if len(acked) == 100:
                break
        assert await redis_client.xpending(b.key, "mod") == {
            "pending": 0, "min": None, "max": None, "consumers": []}
    assert sorted(acked) == sorted(f"room:r{i % 7}#{i // 7 + 1}" for i in range(100))
    twice = {e.id for e in handled_by_a} & {e.id for e in handled_by_b}
    assert twice == {e.id for e in handled_by_a[20:]}


async def test_a_consumer_restarting_under_its_name_first_gets_what_it_held(redis_url,
                                                                             redis_client):
    tenant = f"t{uuid.uuid4().hex[:8]}"
    await publish(redis_client, [StreamEvent(tenant, "room:r", seq, "chat.read",
                                             {"room": "r", "user": "u", "seq": seq}, 1)
                                 for seq in range(1, 6)], 1000, Policy())
    async with EventConsumer(redis_url, tenant, "chat", group="g", consumer="a",
                             start="0") as a:
        first = [event async for event in _take(a, 5)]
        await a.ack(*first[:2])
    async with EventConsumer(redis_url, tenant, "chat", group="g", consumer="a",
                             start="0", block_ms=100) as again:
        held = [event.seq async for event in _take(again, 3)]
    assert held == [3, 4, 5]


async def test_a_tail_without_a_group_reads_from_the_start_and_an_invalid_entry_is_skipped(
        redis_url, redis_client):
    tenant = f"t{uuid.uuid4().hex[:8]}"
    await redis_client.xadd(family_key(tenant, "system"), {"type": "system.reboot", "v": "1",
                                                          "data": "{}"})
    await export(redis_client, tenant, "system.maintenance",
                 {"message": "upgrade", "at": "2026-12-03T20:00:00Z", "duration_s": None},
                 Policy())
    async with EventConsumer(redis_url, tenant, "system", start="0") as tail:
        [event] = [event async for event in _take(tail, 1)]
        assert tail.invalid == 1
    assert (event.type, event.data["message"]) == ("system.maintenance", "upgrade")


async def _take(consumer: EventConsumer, n: int):
    got = 0
    async for event in consumer:
        yield event
        got += 1
        if got == n:
            return
