"""``rthub maintenance``'s input (one line on stderr and exit 1 for each wrong value), where
it finds Redis, and the gateway's queue of system events when Redis is away."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from cluster.ingress import free_port
from fanout.embedded import URL_FILE, forget_url, record_url
from fanout.exports import Policy, family_key
from rthub import event_catalog
from rthub.cli import main
from rthub.maintenance import BadAnnouncement, content
from serve.metrics import GatewayMetrics
from serve.system_events import SystemEvents

NOW = datetime(2027, 1, 5, 21, 0, tzinfo=UTC)


@pytest.fixture
def no_redis(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No REDIS_URL, and a data dir of its own (no hub running from it)."""
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("RTHUB_DATA_DIR", str(tmp_path))
    return tmp_path


def refused(*argv: str) -> str:
    """Run the command and expect ``sys.exit("rthub: ...")`` (one line on stderr, exit
    status 1); that line."""
    with pytest.raises(SystemExit) as exit_:
        main(["maintenance", *argv])
    line = exit_.value.code
    assert isinstance(line, str), line
    assert line.startswith("rthub: ")
    assert "\n" not in line
    return line


@pytest.mark.parametrize(("argv", "says"), [
    (("--at", "now"), "a message (--message TEXT) is required"),
    (("--message", "  ", "--at", "now"), "a message (--message TEXT) is required"),
    (("--message", "db upgrade"), "at (--at) is required"),
    (("--message", "db upgrade", "--at", "tomorrow"), "must be RFC 3339"),
    (("--message", "db upgrade", "--at", "2027-01-05T22:00:00"), "with a zone"),
    (("--message", "db upgrade", "--at", "+soon"), "+10m"),
    (("--message", "db upgrade", "--at", "now", "--duration", "half an hour"),
     "duration must look like 90s, 30m"),
    (("--message", "db upgrade", "--at", "now", "--duration", "0s"), "from 1 s to 30 days"),
])
def test_bad_input_is_one_line_and_exit_1(no_redis: Path, argv: tuple[str, ...],
                                          says: str) -> None:
    assert says in refused(*argv)


def test_the_command_itself_writes_one_line_and_exits_1(no_redis: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "rthub.cli", "maintenance", "--at", "now"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert done.stderr == "rthub: a message (--message TEXT) is required\n"


def test_without_redis_url_or_a_running_hub_it_says_where_redis_comes_from(
        no_redis: Path) -> None:
    line = refused("--message", "db upgrade", "--at", "now")
    assert "set REDIS_URL, or start the hub" in line
    assert str(no_redis) in line


def test_a_redis_that_does_not_answer_is_one_line_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    assert "could not announce through Redis" in refused(
        "--message", "db upgrade", "--at", "now")


def test_it_finds_the_embedded_redis_of_a_running_hub(
        no_redis: Path, embedded_redis: str, capsys: pytest.CaptureFixture[str]) -> None:
    record_url(no_redis, embedded_redis)  # what `rthub up` does while it runs
    with pytest.raises(SystemExit) as exit_:
        main(["maintenance", "--message", "db upgrade", "--at", "+1h", "--tenant", "tm"])
    assert exit_.value.code == 0
    assert "announced to tenant 'tm'" in capsys.readouterr().out
    forget_url(no_redis)
    assert not (no_redis / URL_FILE).exists()


def test_content_is_the_frames_with_at_in_utc() -> None:
    assert content(" db ", "+10m", "1h30m", now=NOW) == {
        "message": "db", "at": "2027-01-05T21:10:00.000Z", "duration_s": 5400}
    assert content("db", "2027-01-05T23:00:00+02:00", 90, now=NOW) == {
        "message": "db", "at": "2027-01-05T21:00:00.000Z", "duration_s": 90}
    assert content("db", "now", now=NOW) == {"message": "db", "at": "2027-01-05T21:00:00.000Z"}
    with pytest.raises(BadAnnouncement):
        content("db", "now", True)


async def test_the_queue_keeps_what_redis_did_not_take_and_counts_what_it_drops(
        embedded_redis: str) -> None:
    away = aioredis.from_url(f"redis://127.0.0.1:{free_port()}/0")
    events = SystemEvents(away, Policy(), "gw-test", bound=3)
    metrics = GatewayMetrics()
    metrics.events_dropped.counts = events.dropped
    for n in range(5):
        events.record("tq", "system.error", {"user": f"u{n}", "code": "not_found",
                                             "message": "no such room", "request": "room.join"})
    with pytest.raises(RedisConnectionError):
        await events.flush()
    assert (len(events.queue), events.dropped) == (3, {"system": 2})
    assert b'rthub_events_dropped_total{family="system"} 2.0' in metrics.render()

    events.redis = here = aioredis.from_url(embedded_redis)  # Redis is back
    assert await events.flush() == 3
    assert not events.queue
    raw = await here.xrange(family_key("tq", "system"))
    assert [event_catalog.parse(i, f).data["user"] for i, f in raw] == ["u0", "u1", "u2"]
    await here.delete(family_key("tq", "system"))
    await here.aclose()
    await away.aclose()


def test_nothing_is_queued_when_the_system_family_is_not_exported() -> None:
    for policy in (None, Policy(frozenset({"chat"}))):
        events = SystemEvents(None, policy, "gw-test")
        events.record("tq", "system.error", {})
        assert not events.queue
