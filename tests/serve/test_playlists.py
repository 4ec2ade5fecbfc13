"""Collaborative playlists through the real hub: permissions, history and revert, and
randomized convergence of concurrent editors with disconnects, resends and a killed host."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import time
from typing import Any

import asyncpg
import pytest

from client.playlist import PlaylistDoc
from rthub import playlist_ot as ot
from serve.playlists import replay
from tests.serve.client import Client
from tests.serve.hosts import kill_and_restart

pytestmark = pytest.mark.one_backend  # gateway behaviour: one backend pair (conftest)

log = logging.getLogger(__name__)


def ins(index: int, track: str, item_id: str) -> dict:
    return {"insert": {"index": index, "track": track, "item_id": item_id}}


async def test_viewers_strangers_and_other_tenants_cannot_edit_or_read(hub):
    owner = await Client.connect(hub.url, hub.token("olga"))
    await owner.ask("playlist.create", {"playlist_id": "mix", "name": "Mix"})
    await owner.ask("playlist.op", {"playlist": "mix", "base_version": 0, "client_id": "o",
                                    "client_seq": 1, "op": ins(0, "t0", "first")})
    await owner.ask("playlist.share", {"playlist": "mix", "user": "vic", "role": "viewer"})
    viewer = await Client.connect(hub.url, hub.token("vic"))
    opened = await viewer.ask("playlist.open", {"playlist": "mix"})
    assert opened["role"] == "viewer"
    changes = {
        "playlist.op": {"playlist": "mix", "base_version": 1, "client_id": "x",
                        "client_seq": 1, "op": ins(0, "t", "a")},
        "playlist.revert": {"playlist": "mix", "to_version": 0},
        "playlist.share": {"playlist": "mix", "user": "mallory", "role": "editor"},
    }
    viewers_cannot = "viewers cannot change the playlist"
    for frame_type, message in (("playlist.op", viewers_cannot),
                                ("playlist.revert", viewers_cannot),
                                ("playlist.share", "only the playlist's owner may share it")):
        denied = await viewer.error_for(frame_type, changes[frame_type])
        assert denied == {"code": "forbidden", "message": message}, frame_type
    reads = {"playlist.open": {"playlist": "mix"}, "playlist.history": {"playlist": "mix"},
             "subscribe": {"topic": "playlist:mix"}}
    # A stranger in the tenant is refused the playlist; in another tenant (the owner's own
    # user id there) there is no such playlist: tenants never see each other's.
    stranger = await Client.connect(hub.url, hub.token("eve"))
    elsewhere = await Client.connect(hub.url, hub.token("olga", tenant=f"{hub.tenant}-x"))
    for client, code in ((stranger, "forbidden"), (elsewhere, "not_found")):
        for frame_type, content in {**reads, **changes}.items():
            error = await client.error_for(frame_type, content)
            assert error["code"] == code, (code, frame_type, error)
        await client.close()
    after = await owner.ask("playlist.open", {"playlist": "mix"})
    assert after["version"] == 1
    assert [item["item_id"] for item in after["items"]] == ["first"]
    assert after["collaborators"] == [{"user": "olga", "role": "owner"},
                                      {"user": "vic", "role": "viewer"}]
    await owner.close()
    await viewer.close()


async def broadcasts_until(client: Client, topic: str, version: int) -> list[dict]:
    """The ``playlist.op`` contents ``client`` receives on ``topic`` up to ``version``."""
    seen: list[dict] = []
    while not seen or seen[-1]["version"] < version:
        seen.append((await client.expect("playlist.op", topic=topic))["content"])
    return seen


async def test_an_op_resent_after_a_dropped_socket_gets_its_first_result_once(hub):
    olga = await Client.connect(hub.url, hub.token("olga"))
    await olga.ask("playlist.create", {"playlist_id": "re", "name": "Re"})
    await olga.ask("playlist.share", {"playlist": "re", "user": "ed", "role": "editor"})
    ed = await Client.connect(hub.url, hub.token("ed"))
    await ed.ask("playlist.open", {"playlist": "re"})
    frame = {"playlist": "re", "base_version": 0, "client_id": "ed-phone", "client_seq": 1,
             "op": ins(0, "song", "a")}
    await ed.send("playlist.op", frame)
    await ed.ws.close()  # the socket drops before the ack is read
    (first,) = await broadcasts_until(olga, "playlist:re", 1)  # it was committed
    assert (first["version"], first["op"], first["client_id"]) == (1, frame["op"], "ed-phone")
    ed = await Client.connect(hub.url, hub.token("ed"))  # back, and the same op again
    again = await ed.ask("playlist.op", frame)
    assert again == {"version": 1, "op": first["op"], "duplicate": True}
    later = await olga.ask("playlist.op", {"playlist": "re", "base_version": 1,
                                           "client_id": "olga", "client_seq": 1,
                                           "op": ins(1, "other", "b")})
    assert later["version"] == 2  # the resend took no version
    # the stream is in order: a broadcast of the resend would come before version 2's
    assert [b["version"] for b in await broadcasts_until(olga, "playlist:re", 2)] == [2]
    history = await olga.ask("playlist.history", {"playlist": "re", "from_version": 0})
    assert [(e["version"], e["client_id"], e["client_seq"]) for e in history["ops"]] == [
        (1, "ed-phone", 1), (2, "olga", 1)]
    for client in (olga, ed):
        await client.close()


async def test_a_second_insert_of_a_track_is_refused_unless_the_playlist_allows_it(hub):
    olga = await Client.connect(hub.url, hub.token("olga"))
    ed = await Client.connect(hub.url, hub.token("ed"))
    conflict = "the track is already in the playlist (no duplicates)"
    for playlist, allow in (("strict", None), ("loose", True)):
        await olga.ask("playlist.create", {"playlist_id": playlist, "name": playlist,
                                           **({} if allow is None else
                                              {"allow_duplicates": allow})})
        await olga.ask("playlist.share", {"playlist": playlist, "user": "ed",
                                          "role": "editor"})
        opened = await ed.ask("playlist.open", {"playlist": playlist})
        assert opened["allow_duplicates"] is bool(allow)
        await olga.ask("playlist.op", {"playlist": playlist, "base_version": 0,
                                       "client_id": "o", "client_seq": 1,
                                       "op": ins(0, "song", "a")})
        second = await ed.ask("playlist.op", {"playlist": playlist, "base_version": 1,
                                              "client_id": "e", "client_seq": 1,
                                              "op": ins(1, "song", "b")})
        topic = f"playlist:{playlist}"
        seen = await broadcasts_until(olga, topic, 2)
        items = [i["item_id"] for i in (await olga.ask("playlist.open",
                                                       {"playlist": playlist}))["items"]]
        if allow:
            assert second == {"version": 2, "op": ins(1, "song", "b")}
            assert seen[-1]["op"] == ins(1, "song", "b")
            assert items == ["a", "b"]
        else:  # a no-op version, so every client's count of versions stays right
            assert second == {"version": 2, "op": None, "conflict": conflict}
            assert (seen[-1]["version"], seen[-1]["op"]) == (2, None)
            assert items == ["a"]
    for client in (olga, ed):
        await client.close()


async def test_history_opens_any_version_from_a_milestone_and_revert_makes_a_new_one(hub):
    owner = await Client.connect(hub.url, hub.token("olga"))
    await owner.ask("playlist.create", {"playlist_id": "long", "name": "Long"})
    version = 0
    for n in range(160):  # past a milestone (every 100 versions)
        reply = await owner.ask("playlist.op", {
            "playlist": "long", "base_version": version, "client_id": "o", "client_seq": n,
            "op": ins(0, f"t{n}", f"i{n}") if n % 4 else ins(n // 2, f"t{n}", f"i{n}")})
        version = reply["version"]
    replayed: ot.Items = []
    history = await owner.ask("playlist.history", {"playlist": "long", "from_version": 0})
    at: dict[int, list[list[str]]] = {0: []}
    for entry in history["ops"]:
        replayed = ot.apply(replayed, entry["op"])
        at[entry["version"]] = [[i, t] for i, t in replayed]
    assert sorted(at) == list(range(161))
    since_100 = await owner.ask("playlist.history", {"playlist": "long", "from_version": 100})
    assert [e["version"] for e in since_100["ops"]] == list(range(101, 161))
    pool = await asyncpg.create_pool(hub.settings.postgres_url, min_size=1, max_size=1)
    try:
        snapshots = await pool.fetch(
            "SELECT version, items FROM playlist_snapshots WHERE tenant = $1 AND "
            "playlist_id = $2 ORDER BY version", hub.tenant, "long")
        assert [r["version"] for r in snapshots] == [0, 100]
        assert json.loads(snapshots[1]["items"]) == at[100]
        # version 150 is read from the milestone at 100 plus 50 ops, not from version 0
        assert await replay(pool, hub.tenant, "long", 150) == (100, at[150])
        assert await replay(pool, hub.tenant, "long", 99) == (0, at[99])
    finally:
        await pool.close()
    reverted = await owner.ask("playlist.revert", {"playlist": "long", "to_version": 150})
    assert reverted["version"] == 161
    assert reverted["op"]["reset"]["items"] == at[150]
    opened = await owner.ask("playlist.open", {"playlist": "long"})
    assert [[item["item_id"], item["track"]] for item in opened["items"]] == at[150]
    await owner.close()


class Editor:
    """One collaborator: a socket, a PlaylistDoc, and the loop a real client would run."""

    def __init__(self, hub, name: str, playlist: str, rng: random.Random) -> None:
        self.hub, self.name, self.playlist, self.rng = hub, name, playlist, rng
        self.doc = PlaylistDoc(playlist, f"{name}-{rng.randrange(10**6)}")
        self.client: Client | None = None
        self.sent: Any = None  # id of the playlist.op frame awaiting its reply
        self.stale = False  # the last op was refused as based on a version too old
        self.reconnects = self.resends = self.duplicates = 0

    async def connect(self, resume: str | None = None) -> None:
        query = f"?resume={resume}" if resume else ""
        self.client = await Client.connect(self.hub.url, self.hub.token(self.name), query=query,
                                           ping_interval=None)  # the hub's heartbeat is ours
        if resume is None:
            self.doc.opened(await self.client.ask("playlist.open", {"playlist": self.playlist}))
        self.sent = None

    async def reconnect(self) -> None:
        """Drop the socket and come back with the resume token."""
        assert self.client is not None
        token = self.client.welcome["content"]["resume_token"]
        await self.client.ws.close()
        self.reconnects += 1
        await self.connect(resume=token)
        restored = await self.client.expect("subscribed", topic=f"playlist:{self.playlist}")
        if not restored["content"]["recovered"]:
            await self.catch_up()

    async def catch_up(self) -> None:
        """Fetch what the stream did not bring (a resume outside the window, or events a
        killed host committed but never published)."""
        assert self.client is not None
        while True:
            history = await self.client.ask("playlist.history", {
                "playlist": self.playlist, "from_version": self.doc.version})
            for entry in history["ops"]:
                self.doc.history_op(entry)  # our own ops are known by client_id/seq
            if not history["more"]:
                return

    def handle(self, frame: dict[str, Any]) -> None:
        if frame["type"] == "playlist.op":
            self.doc.broadcast(frame["content"])
        elif frame.get("ref") == self.sent and self.sent is not None:
            self.sent = None
            if frame["type"] == "ack":
                self.duplicates += bool(frame["content"].get("duplicate"))
                self.doc.acked(frame["content"])
            else:  # unavailable while the host restarts: resend the same op later;
                # conflict when this editor fell more than the playlist's transform window
                # behind (a slow resume under load): catch up from history, then resend
                assert frame["content"]["code"] in ("unavailable", "conflict"), frame
                self.stale = frame["content"]["code"] == "conflict"

    async def pump(self, within: float) -> bool:
        """Handle frames for up to ``within`` s; False if none came."""
        assert self.client is not None
        try:
            frame = await self.client.recv(within)
        except TimeoutError:
            return False
        self.handle(frame)
        while self.client.inbox:
            self.handle(self.client.inbox.pop(0))
        return True

    async def fill_gap(self) -> None:
        """Ops arrived past a missing version: give the stream a second to bring it, then
        read history. (Resending instead would only repeat an op already answered.)"""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 1.0
        while self.doc.gap:
            left = deadline - loop.time()
            if left <= 0 or not await self.pump(left):
                await self.catch_up()
                return

    async def send_next(self) -> None:
        assert self.client is not None
        if self.stale:
            self.stale = False
            await self.catch_up()
        if self.doc.gap:  # our ack may be waiting behind it: it is not a lost reply
            await self.fill_gap()
        again = self.doc.inflight is not None
        frame = self.doc.resend() if again else self.doc.next_frame()
        if frame is not None:
            self.resends += again
            self.sent = await self.client.send("playlist.op", frame)

    async def edit(self, count: int, halfway: asyncio.Event, done: list[int]) -> None:
        for n in range(count):
            for _ in range(self.rng.choice((1, 1, 2))):  # local edits queue while one flies
                self.doc.local(random_op(self.rng, self.doc, self.name, n))
            if self.sent is None:
                await self.send_next()
            if self.sent is not None and self.rng.random() < 0.02:
                await self.reconnect()  # the socket drops before the reply is read ...
                await self.send_next()  # ... so the in-flight op goes again
            while self.sent is not None:
                if not await self.pump(2.0):
                    await self.catch_up()  # a gap the stream will not fill
                    await self.send_next()
            done[0] += 1
            if done[0] >= done[1] // 2:
                halfway.set()

    async def settle(self, version: int) -> None:
        """Send everything left and follow until the server's ``version`` is reached."""
        while not self.doc.idle or self.doc.version < version:
            if self.sent is None and not self.doc.idle:
                await self.send_next()
            if not await self.pump(1.0):
                await self.catch_up()
                if self.sent is not None:
                    await self.send_next()


def random_op(rng: random.Random, doc: PlaylistDoc, name: str, n: int) -> dict:
    ids = [i for i, _ in doc.items]
    choice = rng.random()
    if not ids or choice < 0.45:
        return ins(rng.randint(0, len(ids)), f"{name}-t{n}-{rng.random()}", f"{name}-{n}-"
                   f"{rng.randrange(10**6)}")
    if choice < 0.7:
        return {"remove": {"item_id": rng.choice(ids)}}
    return {"move": {"item_id": rng.choice(ids), "to_index": rng.randint(0, len(ids) - 1)}}


SEED = int(os.environ.get("RTHUB_TEST_SEED", random.randrange(10**6)))
# round trips in all (~1.2 committed ops each): ~90 s on the busy 2-core machine at 2,000;
# RTHUB_TEST_PLAYLIST_ROUNDS=2000 (and RTHUB_TEST_SEED) for a longer soak
ROUNDS = int(os.environ.get("RTHUB_TEST_PLAYLIST_ROUNDS", "800"))


async def test_concurrent_editors_converge_through_disconnects_and_a_killed_host(hub):
    editors: list[Editor] = []
    try:
        async with asyncio.timeout(300):  # a client stuck waiting for a version fails
            await converge(hub, editors)
    except TimeoutError:
        raise AssertionError(
            f"seed {SEED}: no convergence within 300 s (rerun with RTHUB_TEST_SEED={SEED}); "
            + "; ".join(f"{e.name} at version {e.doc.version}, in flight {e.doc.inflight}, "
                        f"{len(e.doc.pending)} pending, early {sorted(e.doc._early)[:5]}"
                        for e in editors)) from None
    except Exception as failed:
        failed.add_note(f"playlist convergence seed {SEED} (rerun with RTHUB_TEST_SEED={SEED})")
        raise


async def converge(hub, editors: list[Editor]) -> None:
    started = time.monotonic()
    rng = random.Random(SEED)
    log.warning("playlist convergence seed %d (rerun with RTHUB_TEST_SEED=%d)", SEED, SEED)
    owner = await Client.connect(hub.url, hub.token("e0"))
    await owner.ask("playlist.create", {"playlist_id": "jam", "name": "Jam",
                                        "allow_duplicates": True})
    names = [f"e{i}" for i in range(rng.randint(3, 5))]
    for name in names[1:]:
        await owner.ask("playlist.share", {"playlist": "jam", "user": name, "role": "editor"})
    editors.extend(Editor(hub, name, "jam", random.Random(rng.randrange(10**9)))
                   for name in names)
    await owner.close()  # (a socket nobody reads would stall on the stream's thousands of ops)
    for editor in editors:
        await editor.connect()
    per_editor = ROUNDS // len(editors)  # round trips, 1-2 local ops each
    halfway, progress = asyncio.Event(), [0, per_editor * len(editors)]
    host = hub.system.host(hub.system.host_for((hub.tenant, "playlist", "jam")))

    async def kill() -> None:
        await halfway.wait()
        await kill_and_restart(host)

    await asyncio.gather(kill(), *(e.edit(per_editor, halfway, progress) for e in editors))
    for editor in editors:  # everyone sends what is still queued ...
        await editor.settle(0)
    owner = await Client.connect(hub.url, hub.token("e0"))
    final = await owner.ask("playlist.open", {"playlist": "jam"})
    for editor in editors:  # ... then follows to the last version
        await editor.settle(final["version"])
    server = [(item["item_id"], item["track"]) for item in final["items"]]
    for editor in editors:
        assert editor.doc.version == final["version"], SEED
        assert editor.doc.items == server, f"seed {SEED}: {editor.name} diverged"
    replayed: ot.Items = []
    after = 0
    while after < final["version"]:
        history = await owner.ask("playlist.history", {"playlist": "jam", "from_version": after})
        for entry in history["ops"]:
            replayed = ot.apply(replayed, entry["op"])
        after = history["ops"][-1]["version"]
    assert replayed == server, f"seed {SEED}: the durable history replays differently"
    reconnects, resends = sum(e.reconnects for e in editors), sum(e.resends for e in editors)
    duplicates = sum(e.duplicates for e in editors)
    log.warning("seed %d: %d versions, %d reconnects, %d resends, %d answered as duplicates, "
                "%.1f s", SEED, final["version"], reconnects, resends, duplicates,
                time.monotonic() - started)
    assert final["version"] >= ROUNDS, "every round trip committed an op or more"
    assert reconnects > 0
    assert 0 < duplicates <= resends  # resends happened, and only a resend is a duplicate
    for editor in editors:
        assert editor.client is not None
        await editor.client.close()
    await owner.close()


async def test_collaborators_see_who_is_on_the_playlist(hub):
    olga = await Client.connect(hub.url, hub.token("olga", name="Olga"))
    await olga.ask("playlist.create", {"playlist_id": "here", "name": "Here"})
    await olga.ask("playlist.share", {"playlist": "here", "user": "ed", "role": "editor"})
    ed = await Client.connect(hub.url, hub.token("ed", name="Ed"))
    await ed.ask("playlist.open", {"playlist": "here"})
    joined = await olga.expect("presence.join", topic="playlist:here",
                               content={"playlist": "here", "user": "ed", "name": "Ed"})
    assert "seq" not in joined
    listed = await ed.ask("presence.list", {"topic": "playlist:here"})
    assert {m["user"] for m in listed["members"]} >= {"ed"}
    await ed.close()
    await olga.expect("presence.leave", topic="playlist:here",
                      content={"playlist": "here", "user": "ed", "name": "Ed"})
    await olga.close()
