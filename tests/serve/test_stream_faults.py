"""A gateway whose link to Redis breaks while the hosts keep publishing: what it missed is
read back from the streams; when Redis lost it too (restarted without persistence), the
client is told ``recovered: false`` and reloads. The gateway reaches a redis-server of the
test's own through a proxy the test cuts (``tests.netcut``); the hosts reach it directly."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator

import pytest
from ray import serve as rayserve

from actors.client import ActorSystem
from fanout.localcluster import LocalCluster, redis_server
from serve.app import build
from serve.auth import issue_token
from tests.conftest import create_database
from tests.netcut import NetCut
from tests.serve.client import Client
from tests.serve.conftest import SECRET, app_settings, routed, urls
from tests.serve.test_streams import say, seqs

SERVER, WHY_NOT = redis_server(minimum=6)
pytestmark = pytest.mark.skipif(SERVER is None, reason=WHY_NOT)


@dataclasses.dataclass
class Split:
    url: str
    server: LocalCluster
    cut: NetCut

    def token(self, user: str) -> str:
        return issue_token(SECRET, user, tenant="t")


@pytest.fixture
async def split(serve_port: int, embedded_pg: str, tmp_path) -> AsyncIterator[Split]:
    with LocalCluster(tmp_path / "redis", cluster=False) as server:
        cut = await NetCut(server.ports[0]).start()
        hosts = app_settings(await create_database(embedded_pg), server.url,
                             RTHUB_DATA_DIR=str(tmp_path))
        gateway = dataclasses.replace(hosts, redis_url=cut.url)
        system = ActorSystem(hosts)
        system.start()
        name = f"gw-{uuid.uuid4().hex[:8]}"
        await asyncio.to_thread(rayserve.run, build(gateway), name=name,
                                route_prefix=f"/{name}")
        url, http = urls(serve_port, name, gateway)
        await routed(http, gateway)
        yield Split(url, server, cut)
        await asyncio.to_thread(rayserve.delete, name)
        system.shutdown_hosts()
        await cut.close()


async def test_what_a_cut_off_gateway_missed_is_read_back_and_a_loss_is_announced(split):
    alice = await Client.connect(split.url, split.token("alice"))
    bob = await Client.connect(split.url, split.token("bob"))
    await alice.ask("room.create", {"room_id": "r", "name": "r"})
    await bob.ask("room.join", {"room": "r"})
    first = await say(alice, "r", "1", "2")
    assert await seqs(bob, "r", 2) == first

    await split.cut.cut()  # the gateway loses Redis; the hosts still publish
    missed = await say(alice, "r", "3", "4")
    await split.cut.restore()
    assert await seqs(bob, "r", 2, after=first[-1]) == missed  # read back, in order

    await split.cut.cut()
    gone = await say(alice, "r", "5", "6")
    split.server.restart_node(split.server.ports[0])  # and Redis loses 5 and 6
    after = await say(alice, "r", "7", "8")
    await split.cut.restore()
    lost = await bob.expect("subscribed", within=30, topic="room:r")
    assert lost["content"]["recovered"] is False
    assert lost["content"]["seq"] == after[-1]
    history = await bob.ask("chat.history", {"room": "r"})  # what a client does then
    assert [m["seq"] for m in history["messages"]] == [*first, *missed, *gone, *after]
    again = await say(alice, "r", "9")
    assert await seqs(bob, "r", 1, after=after[-1]) == again  # and live again
