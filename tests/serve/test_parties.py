"""Listening parties through the real hub: devices with skewed clocks start together,
concurrent controls converge, hand-over, a killed host, queue conflicts, quality tiers."""

from __future__ import annotations

import asyncio
import random
import time

from client.clock import ClockEstimator
from tests.serve.client import Client, scrape
from tests.serve.hosts import kill_and_restart


class Device:
    """A party member whose clock is off by ``offset_ms`` and whose link adds jitter."""

    def __init__(self, client: Client, offset_ms: float, rng: random.Random) -> None:
        self.client, self.offset_ms, self.rng = client, offset_ms, rng
        self.clock = ClockEstimator()

    def now(self) -> float:
        return time.time() * 1000 + self.offset_ms

    async def sync(self, samples: int = 8) -> None:
        for _ in range(samples):
            t0 = self.now()
            await asyncio.sleep(self.rng.uniform(0, 0.05))  # uplink jitter
            frame_id = await self.client.send("time.ping", {"t0": t0})
            pong = (await self.client.expect("time.pong", ref=frame_id))["content"]
            await asyncio.sleep(self.rng.uniform(0, 0.05))  # downlink jitter
            self.clock.add(pong["t0"], pong["t1"], pong["t2"], self.now())

    def intended_error_ms(self, state: dict) -> float:
        """How far this device's idea of "where the track is now" is from the party's."""
        local = self.now()
        mine = state["position_ms"] + (self.clock.to_server(local) - state["at_server_ms"])
        truth = state["position_ms"] + (local - self.offset_ms - state["at_server_ms"])
        return abs(mine - truth)


async def make_party(hub, mode: str = "host_only", party: str = "p") -> Client:
    dj = await Client.connect(hub.url, hub.token("dj"))
    await dj.ask("party.create", {"party_id": party, "name": "Friday", "mode": mode})
    for n in range(3):
        await dj.ask("party.queue", {"party": party, "op": "add", "track": f"song{n}",
                                     "item_id": f"q{n}"})
    return dj


async def test_devices_with_skewed_clocks_and_jitter_agree_within_20_ms(hub):
    rng = random.Random(7)
    dj = await make_party(hub)
    devices = []
    for n in range(5):
        client = await Client.connect(hub.url, hub.token(f"g{n}"))
        await client.ask("party.join", {"party": "p"})
        devices.append(Device(client, rng.uniform(-5000, 5000), random.Random(n)))
    await asyncio.gather(*(d.sync() for d in devices))
    await dj.ask("party.control", {"party": "p", "action": "play"})
    for device in devices:
        state = (await device.client.expect("party.state", topic="party:p"))["content"]
        assert state["track"] == "song0"
        assert device.intended_error_ms(state) < 20, device.offset_ms
    for client in [dj, *(d.client for d in devices)]:
        await client.close()


async def test_concurrent_controls_leave_every_device_in_the_same_state(hub):
    dj = await make_party(hub, mode="everyone", party="free")
    guests = [await Client.connect(hub.url, hub.token(f"g{n}")) for n in range(4)]
    for guest in guests:
        await guest.ask("party.join", {"party": "free"})
    everyone = [dj, *guests]

    async def fiddle(client: Client, n: int) -> None:
        for i in range(10):
            action = ("seek", "volume_change", "pause", "play")[(n + i) % 4]
            await client.ask("party.control", {"party": "free", "action": action,
                                               "position_ms": 1000 * i, "volume": 10 * n}
                             if action in ("seek", "volume_change")
                             else {"party": "free", "action": action})

    await asyncio.gather(*(fiddle(c, n) for n, c in enumerate(everyone)))
    final = (await dj.ask("party.join", {"party": "free"}))["state"]
    for client in everyone:
        states = []
        while len(states) < 50:
            states.append(await client.expect("party.state", topic="party:free"))
        last = max(states, key=lambda f: f["seq"])["content"]
        assert {k: last[k] for k in final} == final
    for client in everyone:
        await client.close()


async def test_the_host_hands_over_and_guests_removed_lose_the_party(hub):
    dj = await make_party(hub, party="ho")
    gus = await Client.connect(hub.url, hub.token("gus"))
    eve = await Client.connect(hub.url, hub.token("eve"))
    await gus.ask("party.join", {"party": "ho"})
    await eve.ask("party.join", {"party": "ho"})
    denied = await gus.error_for("party.control", {"party": "ho", "action": "play"})
    assert denied["message"] == "in a host_only party only the host controls playback"
    await dj.ask("party.host", {"party": "ho", "user": "gus"})
    await gus.expect("party.host", topic="party:ho", content={"party": "ho", "host": "gus"})
    await gus.ask("party.control", {"party": "ho", "action": "play"})
    await gus.ask("party.kick", {"party": "ho", "user": "eve"})
    await eve.expect("party.left", topic="party:ho")
    assert (await eve.error_for("subscribe", {"topic": "party:ho"}))["code"] == "forbidden"
    for client in (dj, gus, eve):
        await client.close()


async def test_a_party_keeps_its_state_and_queue_when_its_host_is_killed(hub):
    dj = await make_party(hub, party="tough")
    played = (await dj.ask("party.control", {"party": "tough", "action": "play"}))["state"]
    await kill_and_restart(hub.system.host(hub.system.host_for((hub.tenant, "party", "tough"))))
    for _ in range(100):
        reply = await dj.expect_ref(await dj.send("party.join", {"party": "tough"}))
        if reply["type"] == "ack":
            break
        assert reply["content"]["code"] == "unavailable"
        await asyncio.sleep(0.1)  # Ray is restarting the host; no event to await
    state = reply["content"]["state"]
    for key in ("track", "position_ms", "playing", "at_server_ms", "queue_version"):
        assert state[key] == played[key], key
    assert [q["item_id"] for q in reply["content"]["queue"]] == ["q1", "q2"]
    await dj.close()


async def test_concurrent_queue_ops_on_one_item_end_the_same_way_for_all(hub):
    dj = await make_party(hub, mode="everyone", party="qq")
    gus = await Client.connect(hub.url, hub.token("gus"))
    await gus.ask("party.join", {"party": "qq"})
    await asyncio.gather(
        dj.ask("party.queue", {"party": "qq", "op": "remove", "item_id": "q1"}),
        gus.ask("party.queue", {"party": "qq", "op": "move", "item_id": "q1", "to_index": 0}))
    last = {}
    for client in (dj, gus):  # versions 1-3 were the adds; 4 and 5 the two racing ops
        frame = None
        while frame is None or frame["content"]["queue_version"] < 5:
            frame = await client.expect("party.queue", topic="party:qq")
        last[client] = frame["content"]["queue"]
    assert last[dj] == last[gus]
    assert "q1" not in [q["item_id"] for q in last[dj]]  # whichever came first, it is gone
    await dj.close()
    await gus.close()


async def test_quality_follows_bandwidth_with_hysteresis_and_counts_changes(deploy):
    _, hub = await deploy()  # one replica: the metrics scraped are the ones counted
    dj = await make_party(hub, party="hq")
    tiers = [(await dj.ask("party.quality", {"party": "hq", "bandwidth_kbps": b}))[
        "bitrate_kbps"] for b in (500, 390, 410, 390, 480)]
    assert tiers == [320, 160, 160, 160, 320]
    error = await dj.error_for("party.quality", {"party": "hq", "bandwidth_kbps": -1})
    assert error == {"code": "bad_request", "message": "bandwidth_kbps must be a number >= 0"}
    metrics = await scrape(hub.url)
    assert metrics["rthub_party_tier_changes_total"] >= 2
    await dj.close()
