"""Chat through the real hub: permissions, presence, receipts, edits and search, attachments,
encryption at rest, audit, and a room that outlives its host."""

from __future__ import annotations

import asyncio
import time
import uuid

import asyncpg
import httpx
import pytest

from tests.serve.client import Client, png
from tests.serve.hosts import kill_and_restart


def http_base(hub) -> str:
    return hub.http


async def upload(hub, token: str, data: bytes, name: str = "pic.png",
                 declared: str = "image/png") -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.post(f"{http_base(hub)}/v1/attachments", files={
            "file": (name, data, declared)}, headers={"authorization": f"Bearer {token}"})


async def download(hub, token: str, attachment_id: str) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.get(f"{http_base(hub)}/v1/attachments/{attachment_id}",
                              headers={"authorization": f"Bearer {token}"})


async def db(hub) -> asyncpg.Connection:
    return await asyncpg.connect(hub.settings.postgres_url)


# -- permissions ---------------------------------------------------------------------------------
@pytest.mark.parametrize("visibility", ["public", "private", "direct"])
async def test_no_cell_of_the_permission_matrix_leaks(hub, visibility):
    """{member, non-member, other tenant} x {history, search, receive, attachment}."""
    olga = await Client.connect(hub.url, hub.token("olga"))
    bob = await Client.connect(hub.url, hub.token("bob"))
    if visibility == "direct":
        room = (await olga.ask("room.create", {"visibility": "direct",
                                               "members": ["bob"]}))["room_id"]
    else:
        room = f"{visibility}-room"
        await olga.ask("room.create", {"room_id": room, "name": "r", "visibility": visibility})
        if visibility == "private":
            await olga.ask("room.invite", {"room": room, "user": "bob"})
        await bob.ask("room.join", {"room": room})
    if visibility == "direct":
        # one room per pair, whoever creates it: bob's create finds olga's room
        again = await bob.ask("room.create", {"visibility": "direct", "members": ["olga"]})
        assert (again["room_id"], again["existing"]) == (room, True)
        await bob.ask("subscribe", {"topic": f"room:{room}"})
    stored = await upload(hub, hub.token("olga"), png())
    attachment = stored.json()["attachment_id"]
    word = f"zebra{uuid.uuid4().hex[:8]}"
    await olga.ask("chat.send", {"room": room, "text": f"the {word} song",
                                 "client_msg_id": "1", "attachments": [attachment]})
    eve = await Client.connect(hub.url, hub.token("eve"))
    stranger = await Client.connect(hub.url, hub.token("bob", tenant=f"{hub.tenant}-other"))
    principals = {"member": (bob, hub.token("bob")), "non-member": (eve, hub.token("eve")),
                  "other tenant": (stranger, hub.token("bob", tenant=f"{hub.tenant}-other"))}
    for who, (client, token) in principals.items():
        allowed = who == "member"
        history = await client.send("chat.history", {"room": room})
        history = await client.expect_ref(history)
        assert (history["type"] == "ack") is allowed, (who, history)
        if allowed:
            assert history["content"]["messages"][-1]["text"] == f"the {word} song"
        hits = (await client.ask("chat.search", {"query": word}))["hits"]
        assert [h["room"] for h in hits] == ([room] if allowed else []), who
        async with httpx.AsyncClient() as http:
            found = await http.get(f"{http_base(hub)}/v1/search", params={"q": word},
                                   headers={"authorization": f"Bearer {token}"})
        assert [h["room"] for h in found.json()["hits"]] == ([room] if allowed else []), who
        receive = await client.expect_ref(await client.send("subscribe",
                                                             {"topic": f"room:{room}"}))
        assert (receive["type"] == "ack") is allowed, (who, receive)
        fetched = await download(hub, token, attachment)
        assert fetched.status_code == (200 if allowed else 404), who
        if allowed:
            assert fetched.content == png()
            assert (await client.expect("chat.message", topic=f"room:{room}"))[
                "content"]["attachments"] == [attachment]
    for client in (olga, bob, eve, stranger):
        await client.close()


async def test_a_removed_member_stops_receiving_on_every_device(hub):
    olga = await Client.connect(hub.url, hub.token("olga"))
    await olga.ask("room.create", {"room_id": "kick", "name": "k"})
    phone = await Client.connect(hub.url, hub.token("bob"))
    laptop = await Client.connect(hub.url, hub.token("bob"))
    await phone.ask("room.join", {"room": "kick"})
    await laptop.ask("subscribe", {"topic": "room:kick"})
    await olga.ask("room.kick", {"room": "kick", "user": "bob"})
    for device in (phone, laptop):
        left = await device.expect("room.left", topic="room:kick")
        assert left["content"] == {"room": "kick", "user": "bob", "by": "olga"}
    after = await olga.ask("chat.send", {"room": "kick", "text": "after", "client_msg_id": "a"})
    await olga.expect("chat.message", topic="room:kick", seq=after["seq"])
    for device in (phone, laptop):
        await device.ask("ping")  # anything already routed to this socket arrived before this
        assert not [f for f in device.inbox if f["type"] == "chat.message"]
    assert (await laptop.error_for("subscribe", {"topic": "room:kick"}))["code"] == "forbidden"
    for client in (olga, phone, laptop):
        await client.close()


# -- presence, typing, receipts ------------------------------------------------------------------
async def devices_of(client: Client, room: str, user: str, until: int) -> int:
    """The user's device count in the room, asked again (a round trip each) until it reaches
    ``until``: a device's arrival travels as a one-way message from another gateway."""
    count = -1
    for _ in range(200):
        listed = await client.ask("presence.list", {"topic": f"room:{room}"})
        count = next((m["devices"] for m in listed["members"] if m["user"] == user), 0)
        if count == until:
            break
    return count


async def test_several_tabs_are_one_presence(hub):
    bob = await Client.connect(hub.url, hub.token("bob"))
    await bob.ask("room.create", {"room_id": "tabs", "name": "t"})
    tab1 = await Client.connect(hub.url, hub.token("alice", name="Alice"))
    tab2 = await Client.connect(hub.url, hub.token("alice", name="Alice"))
    await tab1.ask("room.join", {"room": "tabs"})
    joined = await bob.expect("presence.join", topic="room:tabs",
                              content={"room": "tabs", "user": "alice", "name": "Alice"})
    assert "seq" not in joined  # ephemeral
    await tab2.ask("subscribe", {"topic": "room:tabs"})
    assert await devices_of(bob, "tabs", "alice", until=2) == 2
    await tab1.close()
    assert await devices_of(bob, "tabs", "alice", until=1) == 1
    await tab2.close()
    await bob.expect("presence.leave", topic="room:tabs", content={
        "room": "tabs", "user": "alice", "name": "Alice"})
    assert [f for f in bob.inbox if f["type"] == "presence.join"
            and f["content"]["user"] == "alice"] == []  # the second tab announced nothing
    await bob.close()


async def test_typing_and_read_receipts_reach_the_room(hub):
    olga = await Client.connect(hub.url, hub.token("olga"))
    bob = await Client.connect(hub.url, hub.token("bob"))
    await olga.ask("room.create", {"room_id": "ty", "name": "t"})
    await bob.ask("room.join", {"room": "ty"})
    await olga.ask("chat.typing", {"room": "ty", "typing": True})
    typing = await bob.expect("chat.typing", topic="room:ty")
    assert typing["content"] == {"room": "ty", "user": "olga", "typing": True}
    sent = await olga.ask("chat.send", {"room": "ty", "text": "hi", "client_msg_id": "1"})
    stopped = await bob.expect("chat.typing", topic="room:ty")
    assert stopped["content"]["typing"] is False  # sending ends typing
    await bob.ask("chat.read", {"room": "ty", "seq": sent["seq"]})
    receipt = await olga.expect("chat.read", topic="room:ty")
    assert receipt["content"] == {"room": "ty", "user": "bob", "seq": sent["seq"]}
    await olga.close()
    await bob.close()


async def test_the_send_rate_limit_names_when_to_retry_and_spares_others(deploy):
    # 0.01/s: no token comes back during the test, however slow each send's round trip is
    url, hub = await deploy(RTHUB_CHAT_RATE="0.01", RTHUB_CHAT_BURST="2")
    olga = await Client.connect(url, hub.token("olga"))
    bob = await Client.connect(url, hub.token("bob"))
    await olga.ask("room.create", {"room_id": "rl", "name": "r"})
    await bob.ask("room.join", {"room": "rl"})
    started = time.monotonic()
    for i in range(2):
        await olga.ask("chat.send", {"room": "rl", "text": "x", "client_msg_id": str(i)})
    error = await olga.error_for("chat.send", {"room": "rl", "text": "x", "client_msg_id": "2"})
    elapsed_ms = (time.monotonic() - started) * 1000
    assert error["code"] == "rate_limited"
    # one token at 0.01/s, less what refilled since the first send (+1: whole ms)
    assert 100_000 - elapsed_ms - 1 <= error["retry_after_ms"] <= 100_000
    assert error["message"].startswith("sending too fast in this room; retry in")
    await bob.ask("chat.send", {"room": "rl", "text": "fine", "client_msg_id": "b"})
    await olga.close()
    await bob.close()


# -- edits, deletes, search ----------------------------------------------------------------------
async def test_edits_and_deletes_keep_history_and_search_consistent(hub):
    olga = await Client.connect(hub.url, hub.token("olga"))
    await olga.ask("room.create", {"room_id": "eds", "name": "e"})
    sent = await olga.ask("chat.send", {"room": "eds", "text": "alpha bravo",
                                        "client_msg_id": "1"})
    mid = sent["message_id"]
    assert [h["message_id"] for h in (await olga.ask("chat.search", {"query": "alpha"}))[
        "hits"]] == [mid]
    await olga.ask("chat.edit", {"room": "eds", "message_id": mid, "text": "charlie delta"})
    edited = await olga.expect("chat.edited", topic="room:eds")
    assert edited["content"]["text"] == "charlie delta"
    assert (await olga.ask("chat.search", {"query": "alpha"}))["hits"] == []
    hit = (await olga.ask("chat.search", {"query": "charlie"}))["hits"][0]
    assert hit["text"] == "charlie delta"
    history = (await olga.ask("chat.history", {"room": "eds"}))["messages"]
    assert history[-1]["text"] == "charlie delta"
    assert "edited_at" in history[-1]
    await olga.ask("chat.delete", {"room": "eds", "message_id": mid})
    await olga.expect("chat.deleted", topic="room:eds", content={
        "room": "eds", "message_id": mid, "deleted_by": "olga"})
    assert (await olga.ask("chat.search", {"query": "charlie"}))["hits"] == []
    tombstone = (await olga.ask("chat.history", {"room": "eds"}))["messages"][-1]
    assert tombstone["deleted"] is True
    assert tombstone["text"] == ""
    again = await olga.error_for("chat.edit", {"room": "eds", "message_id": mid, "text": "x"})
    assert again == {"code": "not_found", "message": f"message {mid!r} was deleted"}
    await olga.close()


async def test_search_can_be_turned_off_for_a_sensitive_room(hub):
    olga = await Client.connect(hub.url, hub.token("olga"))
    await olga.ask("room.create", {"room_id": "quiet", "name": "q", "search": False})
    await olga.ask("chat.send", {"room": "quiet", "text": "payroll figures",
                                 "client_msg_id": "1"})
    assert (await olga.ask("chat.search", {"query": "payroll"}))["hits"] == []
    assert (await olga.ask("chat.history", {"room": "quiet"}))["messages"][0]["text"] == \
        "payroll figures"
    async with httpx.AsyncClient() as http:
        found = await http.get(f"{http_base(hub)}/v1/search", params={"q": "payroll"},
                               headers={"authorization": f"Bearer {hub.token('olga')}"})
    assert found.json() == {"hits": []}
    await olga.close()


async def test_turning_search_off_unindexes_what_the_room_already_holds(hub):
    olga = await Client.connect(hub.url, hub.token("olga"))
    await olga.ask("room.create", {"room_id": "hr", "name": "h"})
    await olga.ask("chat.send", {"room": "hr", "text": "salary review", "client_msg_id": "1"})
    assert len((await olga.ask("chat.search", {"query": "salary"}))["hits"]) == 1
    await olga.ask("room.update", {"room": "hr", "search": False})
    assert (await olga.ask("chat.search", {"query": "salary"}))["hits"] == []
    conn = await db(hub)
    try:
        vectors = await conn.fetchval(
            "SELECT count(tsv) FROM chat_messages WHERE tenant = $1 AND room_id = 'hr'",
            hub.tenant)
    finally:
        await conn.close()
    assert vectors == 0  # the stemmed words are gone too, not just hidden
    await olga.ask("room.update", {"room": "hr", "search": True})
    await olga.ask("chat.send", {"room": "hr", "text": "salary bands", "client_msg_id": "2"})
    hits = (await olga.ask("chat.search", {"query": "salary"}))["hits"]
    assert [h["text"] for h in hits] == ["salary bands"]
    await olga.close()


async def test_search_reads_web_syntax_and_ranks_the_closest_match_first(hub):
    olga = await Client.connect(hub.url, hub.token("olga"))
    await olga.ask("room.create", {"room_id": "ws", "name": "w"})
    texts = ["jazz night at the club", "night jazz", "rock night", "jazz jazz jazz tonight"]
    for n, text in enumerate(texts):
        await olga.ask("chat.send", {"room": "ws", "text": text, "client_msg_id": str(n)})

    async def found(query: str) -> list[str]:
        return [h["text"] for h in
                (await olga.ask("chat.search", {"query": query, "room": "ws"}))["hits"]]

    assert await found('"jazz night"') == ["jazz night at the club"]  # a phrase, in order
    assert sorted(await found("rock or club")) == ["jazz night at the club", "rock night"]
    assert sorted(await found("night -jazz")) == ["rock night"]
    assert (await found("jazz"))[0] == "jazz jazz jazz tonight"  # most occurrences ranks first
    await olga.close()


async def test_http_search_finds_what_the_socket_search_finds(hub):
    olga = await Client.connect(hub.url, hub.token("olga"))
    await olga.ask("room.create", {"room_id": "hs", "name": "h"})
    await olga.ask("chat.send", {"room": "hs", "text": "listening party tonight",
                                 "client_msg_id": "1"})
    async with httpx.AsyncClient() as http:
        found = await http.get(f"{http_base(hub)}/v1/search", params={"q": "parties"},
                               headers={"authorization": f"Bearer {hub.token('olga')}"})
        anonymous = await http.get(f"{http_base(hub)}/v1/search", params={"q": "party"})
    assert [h["text"] for h in found.json()["hits"]] == ["listening party tonight"]  # stemmed
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "unauthorized"
    await olga.close()


# -- attachments ---------------------------------------------------------------------------------
async def test_a_disguised_executable_is_refused_and_nothing_is_stored(hub):
    elf = b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 120
    refused = await upload(hub, hub.token("olga"), elf, name="cat.png", declared="image/png")
    assert refused.status_code == 415
    assert refused.json()["error"] == {
        "code": "bad_request",
        "message": "the file is application/x-executable; allowed: application/pdf, "
                   "audio/mp4, audio/mpeg, audio/ogg, audio/x-wav, image/gif, image/jpeg, "
                   "image/png, image/webp, text/plain, video/mp4"}
    conn = await db(hub)
    try:
        assert await conn.fetchval("SELECT count(*) FROM attachments WHERE tenant = $1",
                                   hub.tenant) == 0
    finally:
        await conn.close()


async def test_attachments_over_the_size_limit_are_refused(deploy):
    _, hub = await deploy(RTHUB_ATTACHMENT_MAX_BYTES="1000")
    big = png() + b"\x00" * 70_000
    refused = await upload(hub, hub.token("olga"), big)
    assert refused.status_code == 413
    assert refused.json()["error"]["message"] == \
        "the upload is over the 1000-byte attachment limit"
    assert (await upload(hub, hub.token("olga"), png())).status_code == 201


async def test_a_message_may_only_carry_the_senders_own_uploads(hub):
    olga = await Client.connect(hub.url, hub.token("olga"))
    await olga.ask("room.create", {"room_id": "att", "name": "a"})
    theirs = (await upload(hub, hub.token("mallory"), png())).json()["attachment_id"]
    error = await olga.error_for("chat.send", {"room": "att", "text": "", "client_msg_id": "1",
                                               "attachments": [theirs]})
    assert error["code"] == "not_found"
    assert f"no attachment {theirs!r} uploaded by you" in error["message"]
    await olga.close()


# -- encryption at rest and audit ----------------------------------------------------------------
async def test_text_and_files_are_unreadable_at_rest(hub):
    olga = await Client.connect(hub.url, hub.token("olga"))
    await olga.ask("room.create", {"room_id": "vault", "name": "v"})
    secret = f"launch code {uuid.uuid4().hex}"
    data = png() + secret.encode()  # a PNG with trailing bytes: still sniffed as PNG
    attachment = (await upload(hub, hub.token("olga"), data)).json()["attachment_id"]
    await olga.ask("chat.send", {"room": "vault", "text": secret, "client_msg_id": "1",
                                 "attachments": [attachment]})
    conn = await db(hub)
    try:
        row = await conn.fetchrow("SELECT body, sealed, key_id FROM chat_messages "
                                  "WHERE tenant = $1 AND room_id = 'vault'", hub.tenant)
        logged = await conn.fetch("SELECT payload FROM entity_log WHERE tenant = $1 "
                                  "AND entity_id = 'vault'", hub.tenant)
        blob_key = await conn.fetchval("SELECT blob_key FROM attachments WHERE tenant = $1",
                                       hub.tenant)
    finally:
        await conn.close()
    assert row["body"] is None
    assert row["key_id"] == "test1"
    assert secret.encode() not in row["sealed"]
    assert logged
    assert all(secret.encode() not in r["payload"] for r in logged)
    on_disk = (hub.settings.data_dir / "blobs" / blob_key).read_bytes()
    assert secret.encode() not in on_disk
    assert (await download(hub, hub.token("olga"), attachment)).content == data
    await olga.close()


async def test_the_audit_log_records_who_did_what_and_admins_read_it(hub):
    # olga connects from another loopback address and claims a forged X-Forwarded-For: the
    # log must hold the address she really came from, never the one she wrote.
    olga = await Client.connect(hub.url, hub.token("olga"), local_addr=("127.0.0.2", 0),
                                headers={"X-Forwarded-For": "203.0.113.9"})
    bob = await Client.connect(hub.url, hub.token("bob"))
    carl = await Client.connect(hub.url, hub.token("carl"))
    await olga.ask("room.create", {"room_id": "aud", "name": "a"})
    await bob.ask("room.join", {"room": "aud"})
    await carl.ask("room.join", {"room": "aud"})
    await olga.ask("room.role", {"room": "aud", "user": "bob", "role": "moderator"})
    sent = await bob.ask("chat.send", {"room": "aud", "text": "x", "client_msg_id": "1"})
    await bob.ask("chat.edit", {"room": "aud", "message_id": sent["message_id"], "text": "y"})
    await olga.ask("chat.delete", {"room": "aud", "message_id": sent["message_id"]})
    await bob.ask("room.kick", {"room": "aud", "user": "carl"})
    await bob.ask("room.leave", {"room": "aud"})
    await olga.ask("room.create", {"room_id": "aud-p", "name": "p", "visibility": "private"})
    await olga.ask("room.invite", {"room": "aud-p", "user": "bob"})
    headers = {"authorization": f"Bearer {hub.token('root', scopes='admin')}"}
    async with httpx.AsyncClient() as http:
        log = (await http.get(f"{http_base(hub)}/v1/audit", params={"room": "aud"},
                              headers=headers)).json()
        private = (await http.get(f"{http_base(hub)}/v1/audit", params={"room": "aud-p"},
                                  headers=headers)).json()
        denied = await http.get(f"{http_base(hub)}/v1/audit",
                                headers={"authorization": f"Bearer {hub.token('olga')}"})
    actions = [(e["actor"], e["action"], e["target"], e["message_id"]) for e in log["entries"]]
    assert actions == [("olga", "room.create", None, None), ("olga", "room.join", None, None),
                       ("bob", "room.join", None, None), ("carl", "room.join", None, None),
                       ("olga", "room.role", "bob", None),
                       ("bob", "chat.edit", None, sent["message_id"]),
                       ("olga", "chat.delete", None, sent["message_id"]),
                       ("bob", "room.kick", "carl", None),
                       ("bob", "room.leave", "bob", None)]
    assert [(e["actor"], e["action"], e["target"]) for e in private["entries"]][-1] == \
        ("olga", "room.invite", "bob")
    ips = {e["actor"]: e["ip"] for e in log["entries"] + private["entries"]}
    assert ips == {"olga": "127.0.0.2", "bob": "127.0.0.1", "carl": "127.0.0.1"}
    assert denied.status_code == 403
    conn = await db(hub)
    try:
        with pytest.raises(asyncpg.RaiseError, match="audit_log is append-only"):
            await conn.execute("DELETE FROM audit_log WHERE tenant = $1", hub.tenant)
    finally:
        await conn.close()
    for client in (olga, bob, carl):
        await client.close()


# -- durability ----------------------------------------------------------------------------------
async def test_a_room_keeps_members_roles_and_receipts_when_its_host_is_killed(hub):
    olga = await Client.connect(hub.url, hub.token("olga"))
    bob = await Client.connect(hub.url, hub.token("bob"))
    await olga.ask("room.create", {"room_id": "tough", "name": "t", "visibility": "private"})
    await olga.ask("room.invite", {"room": "tough", "user": "bob"})
    await bob.ask("room.join", {"room": "tough"})
    await olga.ask("room.role", {"room": "tough", "user": "bob", "role": "moderator"})
    sent = await olga.ask("chat.send", {"room": "tough", "text": "hi", "client_msg_id": "1"})
    await bob.ask("chat.read", {"room": "tough", "seq": sent["seq"]})
    await kill_and_restart(hub.system.host(hub.system.host_for((hub.tenant, "room", "tough"))))
    for _ in range(100):  # the gateway's handle may still report the restart once
        reply = await olga.expect_ref(await olga.send("presence.list", {"topic": "room:tough"}))
        if reply["type"] == "ack":
            break
        assert reply["content"]["code"] == "unavailable"
        await asyncio.sleep(0.1)  # nothing to await: the next ask goes to the new process
    assert reply["content"]["total"] == 2  # both members came back from the log
    eve = await Client.connect(hub.url, hub.token("eve"))
    assert (await eve.error_for("room.join", {"room": "tough"}))["code"] == "forbidden"
    assert (await bob.ask("chat.read", {"room": "tough", "seq": sent["seq"]}))[
        "read_seq"] == sent["seq"]
    demote = await bob.error_for("room.role", {"room": "tough", "user": "olga",
                                               "role": "member"})
    assert demote["message"] == "only the room's owner may change roles"  # bob: moderator
    kicked = await bob.error_for("room.kick", {"room": "tough", "user": "olga"})
    assert kicked["message"] == "a moderator cannot remove a owner"
    for client in (olga, bob, eve):
        await client.close()


async def test_the_hosts_retention_sweep_purges_a_rooms_expired_messages(deploy):
    _, hub = await deploy(RTHUB_RETENTION_SWEEP_S="1")
    olga = await Client.connect(hub.url, hub.token("olga"))
    await olga.ask("room.create", {"room_id": "brief", "name": "b"})
    updated = await olga.ask("room.update", {"room": "brief", "retention_s": 60})
    assert updated["retention_s"] == 60
    await olga.ask("chat.send", {"room": "brief", "text": "old news", "client_msg_id": "1"})
    await olga.ask("chat.send", {"room": "brief", "text": "fresh", "client_msg_id": "2"})
    conn = await db(hub)
    try:  # age the first message past the room's retention
        await conn.execute("UPDATE chat_messages SET sent_at = now() - interval '2 minutes' "
                           "WHERE tenant = $1 AND client_msg_id = '1'", hub.tenant)
    finally:
        await conn.close()
    texts: list[str] = []
    for _ in range(100):
        texts = [m["text"] for m in (await olga.ask("chat.history", {"room": "brief"}))[
            "messages"]]
        if texts == ["fresh"]:
            break
        await asyncio.sleep(0.1)  # the sweep runs on a 1 s timer; nothing to await
    assert texts == ["fresh"]
    await olga.close()
