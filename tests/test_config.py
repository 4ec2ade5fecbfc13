"""Configuration: defaults, one clear line per wrong value, and README kept in step."""

import subprocess
import sys
from pathlib import Path

import pytest

from rthub import config
from rthub.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def test_defaults_match_the_seed_names_and_values():
    settings = config.load({})
    assert settings.postgres_url is None
    assert settings.redis_url is None
    assert settings.max_ws_connections_per_user == 5
    assert settings.ws_heartbeat_interval == 30
    assert settings.message_batch_size == 100
    assert settings.notification_queue_size == 10_000
    assert settings.data_dir == Path(".rthub")
    # the chat issue's defaults
    assert settings.chat_max_text == 4000
    assert settings.presence_limit == 200
    assert settings.attachment_max_bytes == 25 * 1024 * 1024


@pytest.mark.parametrize(("name", "value", "message"), [
    ("MESSAGE_BATCH_SIZE", "abc",
     "MESSAGE_BATCH_SIZE must be an integer from 1 to 10000, got 'abc'"),
    ("MESSAGE_BATCH_SIZE", "0", "MESSAGE_BATCH_SIZE must be an integer from 1 to 10000, got '0'"),
    ("MAX_WS_CONNECTIONS_PER_USER", "-1",
     "MAX_WS_CONNECTIONS_PER_USER must be an integer from 1 to 1000, got '-1'"),
    ("WS_HEARTBEAT_INTERVAL", "0.5",
     "WS_HEARTBEAT_INTERVAL must be a number of seconds from 1 to 3600, got '0.5'"),
    ("POSTGRES_URL", "mysql://db/x",
     "POSTGRES_URL must be a postgres:// or postgresql:// URL, got 'mysql://db/x'"),
    ("REDIS_URL", "localhost:6379",
     "REDIS_URL must be a redis://, rediss:// or unix:// URL, got 'localhost:6379'"),
    ("RTHUB_PINNED_ENTITIES", "party",
     "RTHUB_PINNED_ENTITIES must be a comma separated list of kind:id or kind:tenant:id, "
     "got 'party'"),
    ("RTHUB_JWT_SECRET", "short",
     "RTHUB_JWT_SECRET must be at least 32 characters (RFC 7518 3.2: an HS256 key is at least "
     "256 bits), got 5 characters"),
    ("RTHUB_GATEWAY_AUTOSCALING", '{"max_replicas": "many"}',
     'RTHUB_GATEWAY_AUTOSCALING must be a JSON object such as {"min_replicas": 1, '
     '"max_replicas": 4, "target_sockets_per_replica": 5000}, got \'{"max_replicas": "many"}\''),
    ("RTHUB_LOG_LEVEL", "loud",
     "RTHUB_LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, got 'loud'"),
    ("RTHUB_ENCRYPTION_KEYS", "k1:c2hvcnQ=",  # 5 bytes, not 32; the value is never echoed
     "RTHUB_ENCRYPTION_KEYS must be id:base64 entries of 32-byte keys, comma separated "
     "(`rthub keys generate` makes one), got 11 characters"),
    ("RTHUB_SEARCH_LANGUAGE", "english; drop table",
     "RTHUB_SEARCH_LANGUAGE must be a PostgreSQL text search configuration name (english, "
     "simple, french, ...), got 'english; drop table'"),
    ("RTHUB_PUBLIC_WS_URL", "https://rt.example.com/ws",
     "RTHUB_PUBLIC_WS_URL must be a ws:// or wss:// URL, got 'https://rt.example.com/ws'"),
    ("RTHUB_ATTACHMENT_TYPES", "png",
     "RTHUB_ATTACHMENT_TYPES must be comma separated MIME types, got 'png'"),
    ("RTHUB_BLOB_STORE", "/var/blobs",
     "RTHUB_BLOB_STORE must be empty, file:///absolute/path or s3://bucket[/prefix], "
     "got '/var/blobs'"),
    ("RTHUB_CHAT_RATE", "0",
     "RTHUB_CHAT_RATE must be a number from 0.01 to 10000, got '0'"),
    ("RTHUB_NOTIFY_CATALOG", "/nonexistent",
     "RTHUB_NOTIFY_CATALOG must be a folder holding templates/ and locale/, "
     "got '/nonexistent'"),
    ("RTHUB_FCM_CREDENTIALS", "/nonexistent.json",
     "RTHUB_FCM_CREDENTIALS must be a readable service-account JSON file, "
     "got '/nonexistent.json'"),
    ("RTHUB_SMTP_URL", "mail.example.com",
     "RTHUB_SMTP_URL must be an smtp:// or smtps:// URL (user:password@host:port; "
     "?starttls=false to skip it), got 'mail.example.com'"),
    ("TWILIO_ACCOUNT_SID", "AC123",
     "Twilio needs TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_FROM together; "
     "TWILIO_AUTH_TOKEN, TWILIO_FROM unset"),
    ("PUSHER_SECRET", "s",
     "Pusher needs PUSHER_APP_ID, PUSHER_KEY, PUSHER_SECRET together; PUSHER_APP_ID, "
     "PUSHER_KEY unset"),
])
def test_a_wrong_value_names_the_variable_and_what_it_expects(name, value, message):
    with pytest.raises(ConfigError) as caught:
        config.load({name: value})
    assert str(caught.value) == message


def test_pinned_entities_default_to_the_default_tenant():
    settings = config.load({"RTHUB_PINNED_ENTITIES": "party:concert, room:acme:lobby"})
    assert settings.pinned == {("default", "party", "concert"), ("acme", "room", "lobby")}


def test_the_command_refuses_to_start_with_one_line_on_stderr():
    result = subprocess.run(
        [sys.executable, "-c", "from rthub.cli import main; main(['up'])"],
        env={"PATH": "/usr/bin:/bin", "MESSAGE_BATCH_SIZE": "lots"},
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 1
    assert result.stderr == (
        "rthub: MESSAGE_BATCH_SIZE must be an integer from 1 to 10000, got 'lots'\n")
    assert result.stdout == ""


def test_a_provider_key_no_provider_could_use_stops_the_command(tmp_path):
    key = tmp_path / "service-account.json"
    key.write_text("{not json")
    result = subprocess.run(
        [sys.executable, "-c", "from rthub.cli import main; main(['up'])"],
        env={"PATH": "/usr/bin:/bin", "RTHUB_FCM_CREDENTIALS": str(key)},
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 1
    assert result.stderr.startswith(
        f"rthub: RTHUB_FCM_CREDENTIALS ({key}) must be a Firebase service-account JSON key "
        "file: ")
    assert result.stderr.count("\n") == 1


def test_readme_documents_every_variable_exactly_as_the_code_reads_it():
    readme = (ROOT / "README.md").read_text()
    assert config.markdown_table() in readme


def test_gateway_autoscaling_is_parsed_into_serves_config():
    raw = '{"min_replicas": 1, "max_replicas": 4, "target_sockets_per_replica": 5000}'
    settings = config.load({"RTHUB_GATEWAY_AUTOSCALING": raw})
    assert settings.gateway_autoscaling == {"min_replicas": 1, "max_replicas": 4,
                                            "target_sockets_per_replica": 5000}
