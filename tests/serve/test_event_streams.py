"""What clients do over WebSocket reaches the family streams other services consume, typed
and in order, and a consumer group's lag shows on /metrics (the real hub, two replicas)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import pytest

from client.events import EventConsumer
from tests.serve.client import Client, metrics_text

pytestmark = pytest.mark.one_backend


async def take(consumer: EventConsumer, n: int) -> list:
    got = []
    async with asyncio.timeout(20):
        async for event in consumer:
            got.append(event)
            await consumer.ack(event)
            if len(got) == n:
                return got
    return got


async def test_a_party_a_room_and_a_playlist_reach_their_family_streams(hub):
    redis_url = hub.settings.redis_url
    dj = await Client.connect(hub.url, hub.token("dj"))
    await dj.ask("party.create", {"party_id": "fri", "name": "Friday"})
    for n in range(2):
        await dj.ask("party.queue", {"party": "fri", "op": "add", "track": f"song{n}",
                                     "item_id": f"q{n}"})
    await dj.ask("party.control", {"party": "fri", "action": "play"})
    await dj.ask("party.control", {"party": "fri", "action": "skip"})
    await dj.ask("room.create", {"room_id": "r1", "name": "r"})
    await dj.ask("chat.send", {"room": "r1", "text": "this one!", "client_msg_id": "c1"})
    await dj.ask("playlist.create", {"playlist_id": "l1", "name": "Road trip"})
    await dj.ask("playlist.share", {"playlist": "l1", "user": "eve", "role": "editor"})
    async with EventConsumer(redis_url, hub.tenant, "music", group="trainer",
                             start="0") as music:
        play, skip = await take(music, 2)
    assert (play.type, play.data["track"], play.data["by"]) == ("music.play", "song0", "dj")
    assert (skip.type, skip.data["track"], skip.data["skipped"]) == ("music.skip", "song1",
                                                                     "song0")
    assert (play.topic, play.id) == ("party:fri", f"party:fri#{play.seq}")
    async with EventConsumer(redis_url, hub.tenant, "chat", start="0") as chat:
        seen = await take(chat, 3)  # dj's presence in the party and in the room, the message
    assert sorted((e.type, e.topic) for e in seen) == [  # the entities' order is theirs
        ("chat.message", "room:r1"), ("chat.presence", "party:fri"), ("chat.presence", "room:r1")]
    [message] = [e for e in seen if e.type == "chat.message"]
    assert (message.type, message.data["text"], message.data["sender"]) == (
        "chat.message", "this one!", "dj")
    async with EventConsumer(redis_url, hub.tenant, "collaboration", start="0") as edits:
        [share] = await take(edits, 1)
    assert (share.type, share.data) == ("collaboration.share",
                                        {"playlist": "l1", "user": "eve", "role": "editor"})
    text = await metrics_text(hub.operator)
    assert (f'rthub_events_consumer_pending{{family="music",group="trainer",'
            f'tenant="{hub.tenant}"}} 0.0') in text
    await dj.close()


async def test_rthub_events_tail_prints_a_family_as_json_lines(hub):
    dj = await Client.connect(hub.url, hub.token("dj"))
    await dj.ask("room.create", {"room_id": "r2", "name": "r"})
    for n in range(3):
        await dj.ask("chat.send", {"room": "r2", "text": f"m{n}", "client_msg_id": f"c{n}"})
    await dj.close()
    env = {**os.environ, "REDIS_URL": hub.settings.redis_url}
    tail = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "rthub.cli", "events", "tail", "--family",
                         "chat", "--tenant", hub.tenant, "--group", "ops", "--from-start",
                         "--count", "4"], env=env, capture_output=True, text=True, timeout=60)
    assert tail.returncode == 0, tail.stderr
    lines = [json.loads(line) for line in tail.stdout.splitlines()]
    assert sorted((e["type"], e["data"].get("text", e["data"].get("status")))
                  for e in lines) == [("chat.message", "m0"), ("chat.message", "m1"),
                                      ("chat.message", "m2"), ("chat.presence", "join")]


def test_rthub_events_tail_without_a_redis_says_so(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    tail = subprocess.run([sys.executable, "-m", "rthub.cli", "events", "tail", "--family",
                           "music"], env={**env, "RTHUB_DATA_DIR": str(tmp_path)},
                          capture_output=True, text=True, timeout=60)
    assert tail.returncode == 1
    assert tail.stderr.strip() == (f"rthub: REDIS_URL is not set and no local hub runs on "
                                   f"{tmp_path} (start one with `make up`, or set REDIS_URL)")
