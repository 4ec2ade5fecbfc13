"""The runtime on a real Ray and a real PostgreSQL: order, batching, lifecycle, failures."""

import asyncio
import time

import pytest
import ray

from actors.client import ActorSystem
from rthub.errors import BadRequest, NotFound, Unavailable

# Mailbox order, batching, routing and placement are the runtime's own: one PostgreSQL
# (conftest). What PostgreSQL does for it (checkpoint + log, a host killed mid-stream,
# passivation, failed writes) still runs on both servers.
ONE_BACKEND = pytest.mark.one_backend


async def open_session(system: ActorSystem, user: str):
    """A session entity with one open connection ``c`` to hang topics on."""
    ref = system.ref("session", user)
    await ref.ask("session.connect", {"connection_id": "c", "gateway": "g"})
    return ref


def follow(topic: str) -> dict:
    return {"connection_id": "c", "topic": topic}


async def topics(ref) -> list[str]:
    return (await ref.ask("session.get"))["connections"][0]["topics"]


async def stats(system: ActorSystem, name: str) -> dict:
    return await system.host(name).stats.remote()


async def until(predicate, what: str, timeout_s: float = 20.0) -> None:
    """Poll an awaited condition with a deadline (idleness can only be observed over time)."""
    deadline = time.monotonic() + timeout_s
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def restarted(system: ActorSystem, name: str, old_pid: int) -> None:
    """Wait until Ray has brought the killed host back as a new process."""

    async def new_pid() -> bool:
        try:
            return (await stats(system, name))["pid"] != old_pid
        except ray.exceptions.RayActorError:  # still restarting
            return False

    await until(new_pid, f"{name} to restart")


@ray.remote(num_cpus=0)
def send_in_order(settings, sender: str, count: int) -> int:
    """Another process: its own ActorSystem sends ``count`` subscribes, without waiting."""

    async def run() -> int:
        system = ActorSystem(settings)
        ref = system.ref("session", "shared")
        for i in range(count - 1):
            ref.tell("session.follow", follow(f"room:{sender}-{i}"))
        await ref.ask("session.follow", follow(f"room:{sender}-{count - 1}"))
        return count

    return asyncio.run(run())


@ONE_BACKEND
async def test_one_entity_takes_messages_in_arrival_order_from_concurrent_senders(system):
    count = 150
    ref = await open_session(system, "shared")
    remote = [send_in_order.remote(system.settings, f"p{n}", count) for n in range(3)]

    async def local(sender: str) -> None:
        for i in range(count):
            ref.tell("session.follow", follow(f"room:{sender}-{i}"))
            if i % 10 == 0:
                await asyncio.sleep(0)  # interleave with the other local sender

    await asyncio.gather(local("a"), local("b"))
    assert await asyncio.gather(*remote) == [count] * 3
    followed = await topics(ref)
    assert len(followed) == 5 * count
    for sender in ("a", "b", "p0", "p1", "p2"):
        mine = [t for t in followed if t.startswith(f"room:{sender}-")]
        assert mine == [f"room:{sender}-{i}" for i in range(count)], sender


@ONE_BACKEND
async def test_messages_to_one_host_travel_in_full_batches(make_system):
    system = make_system(MESSAGE_BATCH_SIZE="50", RTHUB_HOSTS="1")
    await system.ref("session", "warm").ask("session.get")
    before = await stats(system, "rthub-host-0")
    replies = await asyncio.gather(*(system.ref("session", f"u{i}").ask("session.get")
                                     for i in range(1000)))
    after = await stats(system, "rthub-host-0")
    assert len(replies) == 1000
    assert after["calls"] - before["calls"] == 20  # 1,000 messages, 50 per Ray call
    assert after["largest_batch"] == 50


async def test_an_idle_entity_is_checkpointed_unloaded_and_restored_intact(make_system, db):
    system = make_system(ENTITY_IDLE_S="1", RTHUB_HOSTS="1")
    ref = await open_session(system, "idle")
    for topic in ("room:a", "room:b", "party:c"):
        await ref.ask("session.follow", follow(topic))

    async def unloaded() -> bool:
        # not resident: unloaded after the last follow (a slow gap between two follows may
        # have unloaded it before too, and the next follow loaded it again)
        found = await stats(system, "rthub-host-0")
        return found["residents"] == 0 and found["passivations"] >= 1

    await until(unloaded, "the idle entity to be passivated")
    before = await stats(system, "rthub-host-0")
    checkpoint = await db.fetchrow("SELECT version FROM entity_checkpoints "
                                   "WHERE entity_id = 'idle'")
    assert checkpoint["version"] == 5  # started, connected, three follows
    assert await topics(ref) == ["room:a", "room:b", "party:c"]
    # the read loaded it again, from that checkpoint (it may be unloaded again by now)
    activations = (await stats(system, "rthub-host-0"))["activations"]
    assert activations == before["activations"] + 1 >= 2


async def test_state_comes_back_from_checkpoint_plus_log_after_a_host_restart(make_system, db):
    system = make_system(RTHUB_HOSTS="1", RTHUB_CHECKPOINT_EVERY="5",
                         RTHUB_CHECKPOINT_INTERVAL_S="3600")
    ref = await open_session(system, "restored")  # events 1-2: started, connected
    for i in range(10):
        await ref.ask("session.follow", follow(f"room:{i}"))
    await system.host("rthub-host-0").flush.remote(force=False)  # only the every-5 snapshots
    assert await db.fetchval("SELECT version FROM entity_checkpoints") == 10
    assert await db.fetchval("SELECT count(*) FROM entity_log") == 12
    pid = (await stats(system, "rthub-host-0"))["pid"]
    ray.kill(system.host("rthub-host-0"), no_restart=False)
    await restarted(system, "rthub-host-0", pid)
    assert await topics(ref) == [f"room:{i}" for i in range(10)]
    assert (await stats(system, "rthub-host-0"))["activations"] == 1


async def test_a_host_killed_mid_stream_loses_no_acknowledged_change(make_system):
    system = make_system(RTHUB_HOSTS="1", RTHUB_CHECKPOINT_EVERY="7")
    host = system.host("rthub-host-0")
    pid = (await stats(system, "rthub-host-0"))["pid"]
    acked: dict[str, list[str]] = {f"s{n}": [] for n in range(20)}
    unknown = 0
    halfway = asyncio.Event()

    async def writer(session: str) -> None:
        nonlocal unknown
        ref = await open_session(system, session)
        for i in range(40):
            topic = f"room:{session}-{i}"
            try:
                await ref.ask("session.follow", follow(topic))
            except Unavailable:
                unknown += 1
                continue
            acked[session].append(topic)
            if sum(map(len, acked.values())) >= 300:
                halfway.set()

    async def killer() -> None:
        await halfway.wait()
        ray.kill(host, no_restart=False)

    await asyncio.gather(killer(), *(writer(s) for s in acked))
    await restarted(system, "rthub-host-0", pid)
    for session, acked_topics in acked.items():
        kept = await topics(system.ref("session", session))
        assert set(acked_topics) <= set(kept), session
    assert sum(map(len, acked.values())) + unknown == 20 * 40


async def test_a_failed_checkpoint_is_retried_reported_and_blocks_unloading(make_system, db):
    system = make_system(RTHUB_HOSTS="1")
    host = system.host("rthub-host-0")
    await open_session(system, "cp")
    await db.execute("ALTER TABLE entity_checkpoints RENAME TO entity_checkpoints_away")
    try:
        with pytest.raises(ray.exceptions.RayTaskError, match="entity_checkpoints"):
            await host.flush.remote()
        assert await host.shutdown.remote() == 0  # not unloaded with its checkpoint unsaved
        report = await stats(system, "rthub-host-0")
        assert report["checkpoint_failures"] >= 2
        assert report["residents"] == 1
    finally:
        await db.execute("ALTER TABLE entity_checkpoints_away RENAME TO entity_checkpoints")
    assert await host.flush.remote() == 1  # the retry writes what was kept
    assert await host.shutdown.remote() == 1
    assert await db.fetchval("SELECT version FROM entity_checkpoints") == 2


async def test_a_failed_persist_answers_unavailable_and_keeps_only_durable_state(system, db):
    ref = await open_session(system, "persist")
    await ref.ask("session.follow", follow("room:a"))
    await db.execute("ALTER TABLE entity_log RENAME TO entity_log_away")
    try:
        with pytest.raises(Unavailable, match="could not persist"):
            await ref.ask("session.follow", follow("room:b"))
    finally:
        await db.execute("ALTER TABLE entity_log_away RENAME TO entity_log")
    await ref.ask("session.follow", follow("room:c"))
    assert await topics(ref) == ["room:a", "room:c"]


@ONE_BACKEND
async def test_bad_messages_get_clear_errors_and_others_carry_on(system):
    other = await open_session(system, "bystander")
    await other.ask("session.follow", follow("room:1"))
    with pytest.raises(NotFound, match="no entity kind 'nope'"):
        await system.ref("nope", "x").ask("nope.do")
    with pytest.raises(BadRequest, match=r"session does not accept 'session\.explode'"):
        await system.ref("session", "x").ask("session.explode")
    with pytest.raises(BadRequest, match="Follow: missing field 'topic'"):
        await system.ref("session", "x").ask("session.follow", {"connection_id": "c"})
    await other.ask("session.follow", follow("room:2"))
    assert await topics(other) == ["room:1", "room:2"]


@ONE_BACKEND
async def test_a_pinned_entity_runs_on_a_dedicated_actor(make_system):
    system = make_system(RTHUB_PINNED_ENTITIES="session:vip")
    await open_session(system, "vip")
    pinned = ray.get_actor("rthub-pinned-default-session-vip",
                           namespace=system.settings.namespace)
    assert (await pinned.stats.remote())["residents"] == 1
    for i in range(system.settings.hosts):
        assert (await stats(system, f"rthub-host-{i}"))["residents"] == 0
