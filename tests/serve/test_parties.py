"""Listening parties through the real hub: devices with skewed clocks start together and
converge on corrections, concurrent controls converge, hand-over, end, a killed host, queue
conflicts, quality tiers, the drift metric, a pinned concert party, leaves at concert size."""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time

import pytest
import ray

from client.clock import ClockEstimator
from tests.serve.client import Client, metrics_text, scrape
from tests.serve.hosts import kill_and_restart

pytestmark = pytest.mark.one_backend  # gateway behaviour: one backend pair (conftest)

TARGET_MS = 20  # every device within this of the party's position (the target)
log = logging.getLogger(__name__)


def true_ms() -> float:
    """Real time: the hub runs on this machine, so this is also the server's clock."""
    return time.time() * 1000


def truth_at(view: dict, server_ms: float) -> float:
    """Where the party says the track is at server time ``server_ms`` (its own view)."""
    if view["playing"] and server_ms > view["at_server_ms"]:
        return view["position_ms"] + server_ms - view["at_server_ms"]
    return view["position_ms"]


class Device:
    """A party member whose clock reads ``offset_ms`` off true time, whose link adds 0-50 ms
    each way to its clock exchanges, and whose player runs on its own clock: from local time
    ``anchor_local`` it plays from ``anchor_position`` at ``rate`` until ``rate_until``."""

    def __init__(self, client: Client, offset_ms: float, rng: random.Random) -> None:
        self.client, self.offset_ms, self.rng = client, offset_ms, rng
        self.clock = ClockEstimator()
        self.anchor_local = self.anchor_position = self.rate_until = 0.0
        self.rate = 1.0

    def now(self) -> float:
        return true_ms() + self.offset_ms

    def error_bound_ms(self) -> float:
        """How far off the clock estimate can be: it is the median offset of the ``keep``
        lowest-delay samples, each off by at most its delay / 2; plus 1.5 ms because the
        hub's t1 and t2 are whole ms (truncated: up to 1 ms on an offset, 1 on a delay)."""
        best = sorted(self.clock.samples)[: self.clock.keep]
        return max(delay for delay, _ in best) / 2 + 1.5

    async def sync(self, samples: int = 16) -> None:
        for _ in range(samples):
            t0 = self.now()
            await asyncio.sleep(self.rng.uniform(0, 0.05))  # uplink delay (simulated link)
            frame_id = await self.client.send("time.ping", {"t0": t0})
            pong = (await self.client.expect("time.pong", ref=frame_id))["content"]
            await asyncio.sleep(self.rng.uniform(0, 0.05))  # downlink delay
            self.clock.add(pong["t0"], pong["t1"], pong["t2"], self.now())

    # -- what the device does with a party.state ------------------------------------------
    def start_local(self, state: dict) -> float:
        """Local time at which the device plays ``position_ms`` (starts, for a play)."""
        return self.clock.to_local(state["at_server_ms"])

    def load(self, state: dict) -> None:
        self.anchor_local, self.anchor_position = self.start_local(state), state["position_ms"]
        self.rate, self.rate_until = 1.0, 0.0

    def position(self, local_ms: float) -> float:
        """Where the device's player is at its local time ``local_ms``."""
        nudged = max(0.0, min(local_ms, self.rate_until) - self.anchor_local)
        rest = local_ms - self.anchor_local - nudged
        return self.anchor_position + nudged * self.rate + rest

    def position_at_true(self, true_time: float) -> float:
        return self.position(true_time + self.offset_ms)

    # -- drift and the party's corrections -------------------------------------------------
    def drift(self, ms: float) -> None:
        self.anchor_position += ms

    def correct(self, correction: dict) -> None:
        if correction["mode"] == "seek":
            self.anchor_local = self.clock.to_local(correction["at_server_ms"])
            self.anchor_position, self.rate_until = correction["position_ms"], 0.0
        else:
            local = self.now()
            self.anchor_position, self.anchor_local = self.position(local), local
            self.rate, self.rate_until = correction["rate"], local + correction["for_ms"]

    async def report(self, party: str) -> dict:
        local = self.now()
        return await self.client.ask("party.report", {
            "party": party, "position_ms": self.position(local),
            "at_server_ms": self.clock.to_server(local)})


async def make_party(hub, mode: str = "host_only", party: str = "p") -> Client:
    dj = await Client.connect(hub.url, hub.token("dj"))
    await dj.ask("party.create", {"party_id": party, "name": "Friday", "mode": mode})
    for n in range(3):
        await dj.ask("party.queue", {"party": party, "op": "add", "track": f"song{n}",
                                     "item_id": f"q{n}"})
    return dj


async def state_and_arrival(client: Client, topic: str) -> tuple[dict, float]:
    frame = await client.expect("party.state", topic=topic)
    return frame["content"], true_ms()


async def control_seen_by_all(dj: Client, devices: list[Device], party: str,
                              content: dict) -> tuple[dict, float, float, list]:
    """Send a control; return the party's own view after it (read back by a join), the true
    times around the control, and each device's (state, true arrival time)."""
    waiting = [asyncio.create_task(state_and_arrival(d.client, f"party:{party}"))
               for d in devices]
    before = true_ms()
    await dj.ask("party.control", {"party": party, **content})
    after = true_ms()
    seen = await asyncio.gather(*waiting)
    view = (await dj.ask("party.join", {"party": party}))["state"]
    return view, before, after, seen


async def test_devices_with_skewed_clocks_and_jitter_start_together_and_converge(deploy):
    # A lead long enough for every device to hear of a control before it takes effect on a
    # loaded machine (the default 150 ms is for a network, not for starved test processes);
    # two replicas, as the shared hub has.
    _, hub = await deploy(RTHUB_PARTY_LEAD_MS="2000", RTHUB_GATEWAY_REPLICAS="2")
    rng, lead = random.Random(7), hub.settings.party_lead_ms
    dj = await make_party(hub, party="sync")
    offsets = [-5000.0, 5000.0, *(rng.uniform(-5000, 5000) for _ in range(10))]
    devices = []
    for n, offset in enumerate(offsets):
        client = await Client.connect(hub.url, hub.token(f"g{n}"))
        await client.ask("party.join", {"party": "sync"})
        devices.append(Device(client, offset, random.Random(n)))
    await asyncio.gather(*(d.sync() for d in devices))
    # Each device starts off by its clock estimate's error, which the samples bound; the 20 ms
    # target is met when the link's jitter allows (logged), the bound always (asserted).
    bounds = [d.error_bound_ms() for d in devices]
    start_errors: list[float] = []

    for content, track, position in (({"action": "play"}, "song0", 0),
                                     ({"action": "seek", "position_ms": 60_000}, "song0",
                                      60_000)):
        view, before, after, seen = await control_seen_by_all(dj, devices, "sync", content)
        # The party's truth: the control's position, a lead after the party handled it.
        assert (view["track"], view["position_ms"], view["playing"]) == (track, position, True)
        assert before - 1 <= view["at_server_ms"] - lead <= after
        at = view["at_server_ms"]
        for device, bound, (state, arrived) in zip(devices, bounds, seen, strict=True):
            assert arrived < at, (device.offset_ms, at - arrived)  # the lead left time to spare
            start_error = device.start_local(state) - (at + device.offset_ms)
            start_errors.append(start_error)
            assert abs(start_error) <= bound, (device.offset_ms, start_error, bound)  # together
            device.load(state)
            for later in (0, 1000, 5000):  # where each plays, at true times after the start
                assert abs(device.position_at_true(at + later) - truth_at(view, at + later)) \
                    <= bound, (device.offset_ms, later, bound)
    worst = max(abs(e) for e in start_errors)
    log.info("start errors: worst %.1f ms (target %d ms; proven bounds %.1f-%.1f ms)", worst,
             TARGET_MS, min(bounds), max(bounds))

    # Once playing (a device reports from its start on), each device drifts on purpose,
    # reports, and applies what the party answers.
    await asyncio.sleep(max(0.0, view["at_server_ms"] + 50 - true_ms()) / 1000)
    drifts = [-3000, -900, -250, -120, -45, 30, 60, 110, 240, 700, 1500, 4000]
    for device, drift in zip(devices, drifts, strict=True):
        device.drift(drift)

    async def converge(device: Device, drift: float) -> list[str]:
        modes = []
        for _ in range(6):
            reply = await device.report("sync")
            if not modes:  # the party measures exactly the drift the device took on
                assert abs(reply["drift_ms"] - drift) < 1, (drift, reply)
            if "correction" not in reply:
                assert abs(reply["drift_ms"]) <= hub.settings.party_drift_tolerance_ms
                return modes
            device.correct(reply["correction"])
            modes.append(reply["correction"]["mode"])
            if modes[-1] == "rate":  # the player plays the nudge out; no event marks its end
                await asyncio.sleep(reply["correction"]["for_ms"] / 1000)
        raise AssertionError(f"a device {drift} ms off did not converge: {modes}")

    modes = await asyncio.gather(*(converge(d, x) for d, x in zip(devices, drifts, strict=True)))
    for drift, used in zip(drifts, modes, strict=True):
        assert used, drift  # every drift here is past the tolerance
        assert set(used) == ({"rate"} if abs(drift) < 400 else {"seek"}), (drift, used)
    view = (await dj.ask("party.join", {"party": "sync"}))["state"]
    when = true_ms() + 500
    # a device stops being corrected within the tolerance, as seen through its clock estimate
    tolerance = hub.settings.party_drift_tolerance_ms
    for device, bound in zip(devices, bounds, strict=True):
        assert abs(device.position_at_true(when) - truth_at(view, when)) <= tolerance + bound, \
            (device.offset_ms, bound)
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


async def test_the_host_ends_the_party_for_everyone(hub):
    dj = await make_party(hub, party="bye")
    gus = await Client.connect(hub.url, hub.token("gus"))
    await gus.ask("party.join", {"party": "bye"})
    refused = await gus.error_for("party.end", {"party": "bye"})
    assert refused == {"code": "forbidden", "message": "only the host may end the party"}
    assert await dj.ask("party.end", {"party": "bye"}) == {"party": "bye", "ended": True}
    for client in (dj, gus):
        await client.expect("party.ended", topic="party:bye",
                            content={"party": "bye", "by": "dj"})
    ended = {"code": "conflict", "message": "party 'bye' has ended"}
    assert await dj.error_for("party.control", {"party": "bye", "action": "play"}) == ended
    assert await dj.error_for("party.queue", {"party": "bye", "op": "add",
                                              "track": "late"}) == ended
    assert await gus.error_for("party.join", {"party": "bye"}) == ended
    for client in (dj, gus):
        await client.close()


async def test_a_party_keeps_its_state_and_queue_when_its_host_is_killed(hub):
    dj = await make_party(hub, party="tough")
    gus = await Client.connect(hub.url, hub.token("gus"))
    await gus.ask("party.join", {"party": "tough"})
    played = (await dj.ask("party.control", {"party": "tough", "action": "play"}))["state"]
    before = await gus.expect("party.state", topic="party:tough")
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
    # The restarted party goes on: a control reaches the follower on the same stream.
    sought = (await dj.ask("party.control", {"party": "tough", "action": "seek",
                                             "position_ms": 42_000}))["state"]
    after = await gus.expect("party.state", topic="party:tough")
    assert after["seq"] > before["seq"]
    assert after["content"] == sought
    assert (sought["track"], sought["position_ms"], sought["playing"]) == ("song0", 42_000, True)
    await dj.close()
    await gus.close()


async def test_racing_queue_ops_end_the_same_way_on_every_device_and_in_the_party(hub):
    dj = await make_party(hub, mode="everyone", party="qq")  # q0 q1 q2, versions 1-3
    gus = await Client.connect(hub.url, hub.token("gus"))
    await gus.ask("party.join", {"party": "qq"})
    ops = {  # each pair races on one item (or one place)
        dj: [{"op": "remove", "item_id": "q1"}, {"op": "add", "track": "d", "item_id": "d"},
             {"op": "vote", "item_id": "q2"}, {"op": "move", "item_id": "q0", "to_index": 2},
             {"op": "add", "track": "same", "item_id": "twice"}],
        gus: [{"op": "move", "item_id": "q1", "to_index": 0},
              {"op": "move", "item_id": "d", "to_index": 0}, {"op": "vote", "item_id": "q2"},
              {"op": "remove", "item_id": "q0"},
              {"op": "add", "track": "same", "item_id": "twice"}],
    }

    async def send_all(client: Client) -> None:  # all on the wire before any answer
        sent = [await client.send("party.queue", {"party": "qq", **op}) for op in ops[client]]
        for frame_id in sent:
            assert (await client.expect_ref(frame_id))["type"] == "ack"

    await asyncio.gather(send_all(dj), send_all(gus))
    carol = await Client.connect(hub.url, hub.token("carol"))  # a fresh join: the party's own
    party = await carol.ask("party.join", {"party": "qq"})
    version, queue = party["state"]["queue_version"], party["queue"]
    assert version == 3 + 9  # ten ops, one a resend of the same add (idempotent)
    ids = [q["item_id"] for q in queue]
    assert sorted(ids) == ["d", "q2", "twice"]  # q0 and q1 removed, whichever came first
    assert next(q["votes"] for q in queue if q["item_id"] == "q2") == 2
    for client in (dj, gus):
        frame = None
        while frame is None or frame["content"]["queue_version"] < version:
            frame = await client.expect("party.queue", topic="party:qq")
        assert frame["content"]["queue_version"] == version
        assert frame["content"]["queue"] == queue
    for client in (dj, gus, carol):
        await client.close()


async def test_quality_follows_bandwidth_with_hysteresis_and_counts_changes(deploy):
    _, hub = await deploy()  # one replica: the metrics scraped are the ones counted
    dj = await make_party(hub, party="hq")
    tiers = [(await dj.ask("party.quality", {"party": "hq", "bandwidth_kbps": b}))[
        "bitrate_kbps"] for b in (500, 390, 410, 390, 480)]
    assert tiers == [320, 160, 160, 160, 320]
    error = await dj.error_for("party.quality", {"party": "hq", "bandwidth_kbps": -1})
    assert error == {"code": "bad_request", "message": "bandwidth_kbps must be a number >= 0"}
    metrics = await scrape(hub.operator)
    assert metrics["rthub_party_tier_changes_total"] >= 2
    await dj.close()


def histogram(text: str, name: str) -> dict[str, float]:
    """A histogram's series from Prometheus text: {'count', 'sum', '<le>': bucket count}."""
    series = {}
    for line in text.splitlines():
        match = re.match(rf'{name}_(bucket|count|sum)(?:{{le="([^"]+)"}})? (\S+)$', line)
        if match:
            series[match[2] or match[1]] = float(match[3])
    return series


async def test_reported_drift_lands_in_the_drift_histogram(deploy):
    _, hub = await deploy()  # one replica: the metrics scraped are the ones counted
    dj = await make_party(hub, party="hd")
    state = (await dj.ask("party.control", {"party": "hd", "action": "play"}))["state"]
    name = "rthub_party_drift_seconds"
    before = histogram(await metrics_text(hub.operator), name)
    at = state["at_server_ms"] + 10_000
    for drift in (3, -150, 2000):  # 3 ms, 150 ms behind, 2 s ahead
        reply = await dj.ask("party.report", {"party": "hd", "position_ms": 10_000 + drift,
                                              "at_server_ms": at})
        assert reply["drift_ms"] == drift
    wrong = await dj.ask("party.report", {"party": "hd", "position_ms": 0, "at_server_ms": at,
                                          "track": "another"})
    assert wrong["correction"]["mode"] == "reload"  # no drift to measure: not counted
    after = histogram(await metrics_text(hub.operator), name)
    moved = {key: after[key] - before.get(key, 0) for key in after}
    assert moved["count"] == 3
    assert abs(moved["sum"] - 2.153) < 1e-6
    assert (moved["0.005"], moved["0.1"], moved["0.2"], moved["1.0"], moved["5.0"],
            moved["+Inf"]) == (1, 1, 2, 2, 3, 3)
    await dj.close()


async def test_a_pinned_party_runs_on_its_own_actor_and_works_through_the_hub(deploy):
    _, hub = await deploy(RTHUB_PINNED_ENTITIES="party:acme:concert")
    key = ("acme", "party", "concert")
    assert hub.system.host_for(key) == "rthub-pinned-acme-party-concert"
    dj = await Client.connect(hub.url, hub.token("dj", tenant="acme"))
    fan = await Client.connect(hub.url, hub.token("fan", tenant="acme"))
    await dj.ask("party.create", {"party_id": "concert", "name": "Live", "mode": "host_only"})
    pinned = ray.get_actor("rthub-pinned-acme-party-concert", namespace=hub.settings.namespace)
    await dj.ask("party.queue", {"party": "concert", "op": "add", "track": "opener"})
    await fan.ask("party.join", {"party": "concert"})
    calls = (await pinned.stats.remote())["calls"]
    played = (await dj.ask("party.control", {"party": "concert", "action": "play"}))["state"]
    assert (await fan.expect("party.state", topic="party:concert"))["content"] == played
    stats = await pinned.stats.remote()
    assert stats["residents"] == 1  # the party alone: sessions and other parties are hashed
    assert stats["calls"] > calls  # ... and the control went to this actor
    await dj.ask("party.create", {"party_id": "club", "name": "Small", "mode": "everyone"})
    assert (await pinned.stats.remote())["residents"] == 1
    assert hub.system.host_for(("acme", "party", "club")).startswith("rthub-host-")
    for client in (dj, fan):
        await client.close()


async def test_leaves_from_a_concert_sized_party_are_counted_not_announced(deploy):
    _, hub = await deploy(RTHUB_PRESENCE_LIMIT="2")
    dj = await make_party(hub, party="big")
    fans = [await Client.connect(hub.url, hub.token(f"fan{n}")) for n in range(3)]
    for fan in fans:
        await fan.ask("party.join", {"party": "big"})  # 4 members: over the limit
    assert (await fans[2].ask("party.leave", {"party": "big"})) == {"party": "big"}
    await dj.expect("presence.occupancy", topic="party:big",
                    content={"party": "big", "online": 3, "members": 3})
    # A kick is still announced: the guest's sockets must lose the topic.
    await dj.ask("party.kick", {"party": "big", "user": "fan0"})
    kicked = {"party": "big", "user": "fan0", "by": "dj"}
    await fans[0].expect("party.left", topic="party:big", content=kicked)
    await dj.expect("party.left", topic="party:big", content=kicked)
    # fan2's leave came first on the stream: had it been announced, it would be here by now.
    assert [f["content"] for f in dj.inbox if f["type"] == "party.left"] == []
    for client in (dj, *fans):
        await client.close()
