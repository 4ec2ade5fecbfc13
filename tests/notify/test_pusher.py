"""The Pusher Channels adapter against a local Pusher that checks request signing: the event
it publishes and where, how it reads each answer (bad key or secret, outage, too large),
and the channel name every user id gets."""

from __future__ import annotations

import json

import pytest

from notify.providers.base import Note, ProviderError
from notify.providers.pusher_channels import MAX_DATA, PusherChannels, channel_of, user_of
from rthub import config
from tests.notify.servers.pusher import APP_ID, CHANNEL, KEY, SECRET, PusherServer


def settings(url: str, key: str = KEY, secret: str = SECRET) -> config.Settings:
    return config.load({"PUSHER_APP_ID": APP_ID, "PUSHER_KEY": key, "PUSHER_SECRET": secret,
                        "RTHUB_PUSHER_URL": url})


def note(user_id: str = "ana", body: str = "Bo follows you") -> Note:
    return Note(id="n1", tenant="t", user_id=user_id, title="New follower", body=body,
                priority=2, category="social", data={"by": "bo", "tags": ["é"]})


@pytest.fixture
async def server():
    async with PusherServer() as pusher:
        yield pusher


@pytest.fixture
async def provider(server):
    adapter = PusherChannels.from_settings(settings(server.url))
    yield adapter
    await adapter.aclose()


async def refusal(adapter: PusherChannels, sent: Note | None = None) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await adapter.send(None, sent or note())
    return caught.value


async def test_the_notification_is_published_signed_on_the_users_private_channel(server,
                                                                                   provider):
    assert await provider.send(None, note()) is None

    [event] = server.events  # the server answers 401 to a request not signed as Pusher's
    assert event["name"] == "notification"
    assert event["channels"] == ["private-user-ana"]
    assert event["auth_key"] == KEY
    assert json.loads(event["data"]) == {"id": "n1", "title": "New follower",
                                         "body": "Bo follows you", "priority": 2,
                                         "category": "social",
                                         "data": {"by": "bo", "tags": ["é"]}}


@pytest.mark.parametrize("user_id", ["auth0|5f1e", "ana maría", "x" * 200])
async def test_any_user_id_gets_a_channel_pusher_takes(server, provider, user_id):
    await provider.send(None, note(user_id))

    [event] = server.events
    assert event["channels"] == [channel_of(user_id)]


@pytest.mark.parametrize(("key", "secret"), [(KEY, "not-the-secret"), ("not-the-key", SECRET)])
async def test_a_wrong_key_or_secret_is_permanent(server, key, secret):
    adapter = PusherChannels.from_settings(settings(server.url, key, secret))
    try:
        err = await refusal(adapter)
    finally:
        await adapter.aclose()

    assert (err.retryable, err.dead_target, err.code) == (False, False, "pusher 401")
    assert server.events == []


async def test_data_over_10_kb_is_refused_before_it_is_sent(server, provider):
    err = await refusal(provider, note(body="x" * MAX_DATA))

    assert (err.retryable, err.code) == (False, "pusher 413")
    assert server.requests == 0


async def test_data_just_under_the_limit_goes_through(server, provider):
    small = len(json.dumps({"id": "n1", "title": "New follower", "body": "", "priority": 2,
                            "category": "social", "data": {"by": "bo", "tags": ["é"]}},
                           ensure_ascii=False, separators=(",", ":")).encode())

    await provider.send(None, note(body="x" * (MAX_DATA - small)))

    assert len(server.events[0]["data"].encode()) == MAX_DATA


@pytest.mark.parametrize("status", [500, 503, 429])
async def test_an_outage_or_rate_limit_is_retryable_and_the_next_send_goes_through(
        server, provider, status):
    server.fail_next(status)

    err = await refusal(provider)
    assert (err.retryable, err.code) == (True, f"pusher {status}")

    await provider.send(None, note())
    assert len(server.events) == 1


async def test_pusher_saying_too_large_is_permanent(server, provider):
    server.fail_next(413)

    err = await refusal(provider)

    assert (err.retryable, err.code) == (False, "pusher 413")


async def test_pusher_unreachable_is_retryable():
    async with PusherServer() as server:
        url = server.url  # closed on leaving: nothing listens there any more
    adapter = PusherChannels.from_settings(settings(url))
    try:
        err = await refusal(adapter)
    finally:
        await adapter.aclose()

    assert (err.retryable, err.dead_target, err.code) == (True, False, "pusher transport")


ODD_IDS = ["ana", "ana@example.com", "auth0|5f1e", "a=b", "a=3Db", "a b", "a%20b", "a=20b",
           "é", "=C3=A9", "\N{GUITAR}", "", "private-user-x", "x" * 151, "é" * 26, "é" * 25,
           "x" * 200, "x" * 199, "\N{GUITAR}" * 50]


def test_channel_names_are_valid_distinct_and_reversible_when_short():
    channels = [channel_of(user) for user in ODD_IDS]

    assert len(set(channels)) == len(ODD_IDS)
    for user, channel in zip(ODD_IDS, channels, strict=True):
        assert channel.startswith("private-user-")
        assert CHANNEL.match(channel)
        hashed = channel.startswith("private-user-==")
        assert user_of(channel) == (None if hashed else user)
    assert channel_of("ana") == "private-user-ana"
    assert channel_of("auth0|5f1e") == "private-user-auth0=7C5f1e"
    assert channel_of("x" * 151) == "private-user-" + "x" * 151  # 164: Pusher's longest
    assert channel_of("x" * 152).startswith("private-user-==")


def test_only_canonical_user_channels_decode():
    assert user_of("private-user-=41") is None  # "A" is written "A"
    assert user_of("private-user-a=4") is None
    assert user_of("private-user-=FF") is None  # not UTF-8
    assert user_of("presence-room") is None


def test_no_app_id_means_no_pusher_provider():
    assert PusherChannels.from_settings(config.load({})) is None
