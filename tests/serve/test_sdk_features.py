"""The Python SDK's feature clients against the real hub: a party's clock, position and
reports, playlist editors converging, the notification inbox and its pages, and leaving a
topic."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from client import Inbox, PartyClient, PartyScheduler, PlaylistEditor, now_ms
from tests.serve.sdk import drop, next_event, sdk_hubs, until

pytestmark = pytest.mark.one_backend


async def test_a_party_member_plans_its_start_and_corrects_drift_through_the_clock(hub):
    async with sdk_hubs(hub) as connect:
        dj, guest = await connect("dj"), await connect("guest")
        await dj.request("party.create", {"party_id": "p", "name": "Friday",
                                          "mode": "host_only"})
        await dj.request("party.queue", {"party": "p", "op": "add", "track": "song0",
                                         "item_id": "q0"})
        party = PartyClient(guest, "p")
        await party.join()
        assert [item["item_id"] for item in party.queue] == ["q0"]
        synced = await guest.sync_clock(8)
        assert abs(synced["offset_ms"]) < synced["error_bound_ms"] + 50  # same machine
        assert synced["error_bound_ms"] < 1000

        playing = asyncio.create_task(next_event(party, "state",
                                                 where=lambda s: s["playing"]))
        await dj.request("party.control", {"party": "p", "action": "play"})
        state, = await playing
        assert party.state == state
        start = guest.clock.to_local(state["at_server_ms"])
        scheduler = PartyScheduler(party)
        plan = scheduler.plan(start - 100)  # before the party's lead has passed
        assert plan == {"start_at_local_ms": start, "offset_ms": state["position_ms"]}
        assert party.position_at(start + 1000) == pytest.approx(state["position_ms"] + 1000)
        later = scheduler.plan(start + 500)  # a device that joins late starts where it is
        assert later["offset_ms"] == pytest.approx(state["position_ms"] + 500)

        at = start + 2000
        expected = party.position_at(at)
        assert scheduler.correct(expected + 10, at)["action"] == "none"
        nudge = scheduler.correct(expected + 60, at)
        assert nudge["action"] == "nudge"
        assert nudge["rate"] == pytest.approx(1 - 60 / 2000)  # ahead: slower, over 2 s
        assert scheduler.correct(expected + 300, at)["rate"] == pytest.approx(0.95)  # ±5%
        seek = scheduler.correct(expected - 900, at)
        assert seek["action"] == "seek"
        assert seek["seek_to_ms"] == pytest.approx(expected)

        # the party's own verdict on this device: on time, then 150 ms ahead, then 2 s ahead
        on_time = await party.report(party.position_at(now_ms()))
        assert abs(on_time["drift_ms"]) < 20 + 2 * synced["error_bound_ms"] + 50, on_time
        ahead = await party.report(party.position_at(now_ms()) + 150)
        assert ahead["correction"]["mode"] == "rate"
        assert ahead["correction"]["rate"] < 1
        far = await party.report(party.position_at(now_ms()) + 2000)
        assert far["correction"]["mode"] == "seek"
        assert far["correction"]["at_server_ms"] > state["at_server_ms"]
        wrong = await party.report(1000.0, track="another song")
        assert wrong == {"drift_ms": None, "correction": {"mode": "reload",
                                                          "state": wrong["correction"]["state"]}}
        assert wrong["correction"]["state"]["track"] == "song0"
        assert (await party.quality(10_000))["bitrate_kbps"] == 320
        assert await party.quality(100) == {"bitrate_kbps": 24, "changed": True}


async def test_two_playlist_editors_converge_on_the_servers_list(hub):
    async with sdk_hubs(hub) as connect:
        ana, bo = await connect("ana"), await connect("bo")
        created = await ana.request("playlist.create", {"name": "road trip"})
        playlist = created["playlist_id"]
        await ana.request("playlist.share", {"playlist": playlist, "user": "bo",
                                             "role": "editor"})
        mine, theirs = PlaylistEditor(ana, playlist), PlaylistEditor(bo, playlist)
        await mine.open()
        await theirs.open()
        first = mine.insert(0, "t1")
        mine.insert(1, "t2")
        theirs.insert(0, "t3")  # concurrent with ana's, made on an older version
        theirs.insert(0, "t4")
        mine.move(first, 1)
        await asyncio.wait_for(asyncio.gather(mine.settled(), theirs.settled()), 60)
        final = (await ana.request("playlist.open", {"playlist": playlist}))

        def converged() -> bool:
            return mine.version == theirs.version == final["version"]

        await until(converged, mine, "change")
        await until(converged, theirs, "change")
        server = [(i["item_id"], i["track"]) for i in final["items"]]
        assert [(i["item_id"], i["track"]) for i in mine.items] == server
        assert [(i["item_id"], i["track"]) for i in theirs.items] == server
        assert sorted(track for _, track in server) == ["t1", "t2", "t3", "t4"]

        drop(bo)  # edits made while bo's socket is down go out on the next one
        theirs.remove(first)
        mine.insert(0, "t5")
        await asyncio.wait_for(asyncio.gather(mine.settled(), theirs.settled()), 60)
        final = await ana.request("playlist.open", {"playlist": playlist})
        await until(converged, mine, "change")
        await until(converged, theirs, "change")
        assert [i["track"] for i in mine.items] == [i["track"] for i in final["items"]]
        assert [i["track"] for i in theirs.items] == [i["track"] for i in final["items"]]
        assert sorted(i["track"] for i in final["items"]) == ["t2", "t3", "t4", "t5"]


async def test_the_inbox_loads_counts_and_hears_a_notification_sent_over_http(hub):
    async with sdk_hubs(hub) as connect:
        ana = await connect("ana")
        inbox = Inbox(ana)
        assert await inbox.load() == []
        arrived = asyncio.create_task(next_event(inbox, "notification"))
        async with httpx.AsyncClient() as http:
            sent = await http.post(f"{hub.http}/v1/notifications", timeout=30, json={
                "user_id": "ana", "title": "Nouvelle chanson", "content": "t1 ajoutée",
                "priority": "HIGH"}, headers={
                "authorization": f"Bearer {hub.token('svc', scopes='notify:send')}"})
        assert sent.status_code == 202, sent.text
        note, = await arrived
        assert (note["id"], note["title"], note["priority"]) == (sent.json()["id"],
                                                                  "Nouvelle chanson", 2)
        assert inbox.unread == 1
        await inbox.ack(note["id"], "read")
        assert inbox.unread == 0
        assert inbox.items[0]["state"] == "read"
        assert [item["id"] for item in await inbox.load()] == [note["id"]]
        assert inbox.unread == 0


async def test_the_inbox_pages_back_and_an_archived_notification_leaves_it(hub):
    async with sdk_hubs(hub) as connect:
        ana, phone = await connect("ana"), await connect("ana")
        live = Inbox(phone)
        await live.load()
        async with httpx.AsyncClient() as http:
            for i in range(5):
                sent = await http.post(f"{hub.http}/v1/notifications", timeout=30, json={
                    "user_id": "ana", "title": f"n{i}", "priority": "HIGH"}, headers={
                    "authorization": f"Bearer {hub.token('svc', scopes='notify:send')}"})
                assert sent.status_code == 202, sent.text
        await until(lambda: len(live.items) == 5, live, "change")

        inbox = Inbox(ana)
        assert [n["title"] for n in await inbox.load(limit=2)] == ["n4", "n3"]
        assert inbox.more
        assert inbox.unread == 5
        assert [n["title"] for n in await inbox.load_more()] == ["n2", "n1"]
        assert inbox.more
        assert [n["title"] for n in await inbox.load_more()] == ["n0"]
        assert not inbox.more
        assert [n["title"] for n in inbox.items] == ["n4", "n3", "n2", "n1", "n0"]

        archived = inbox.items[2]["id"]
        await inbox.ack(archived, "archived")
        assert [n["title"] for n in inbox.items] == ["n4", "n3", "n1", "n0"]
        # the other device hears it as notification.state and drops it too
        await until(lambda: len(live.items) == 4, live, "change")
        assert [n["title"] for n in live.items] == ["n4", "n3", "n1", "n0"]
        assert inbox.unread == 4
        assert [n["title"] for n in await inbox.load(limit=5, state="archived")] == ["n2"]


async def test_an_unsubscribed_topic_sends_nothing_more(hub):
    async with sdk_hubs(hub) as connect:
        ana, bo = await connect("ana"), await connect("bo")
        created = await bo.request("room.create", {"room_id": "later", "name": "later"})
        topic = created["topic"]
        await ana.request("room.join", {"room": "later"})
        heard: list[str] = []
        ana.on("chat.message", lambda content, frame: frame.get("topic") == topic
               and heard.append(content["text"]))
        await bo.request("chat.send", {"room": "later", "text": "one", "client_msg_id": "one"})
        await until(lambda: heard == ["one"], ana, "chat.message")

        await ana.unsubscribe(topic)
        assert ana.position(topic) is None
        for text in ("two", "three"):
            await bo.request("chat.send", {"room": "later", "text": text,
                                           "client_msg_id": text})
        # one topic's events reach a socket in order: had "two" and "three" still been sent
        # to ana, they would come before "four"
        await ana.subscribe(topic)
        await bo.request("chat.send", {"room": "later", "text": "four",
                                       "client_msg_id": "four"})
        await until(lambda: "four" in heard, ana, "chat.message")
        assert heard == ["one", "four"]
