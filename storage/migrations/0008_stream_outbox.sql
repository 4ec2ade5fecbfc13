-- The outbox (issue 18): every stream event (a broadcast with a seq) is written here in the
-- transaction that commits the entity log rows that made it, and deleted once Redis has it.
-- What is left is what a host committed and did not publish (it died in between, or Redis
-- was away): the entity's next activation, or the outbox sweep, publishes it before anything
-- newer. Keyed by the entity, which is how activation reads it.
CREATE TABLE stream_outbox (
    tenant     text    NOT NULL,
    kind       text    NOT NULL,
    entity_id  text    NOT NULL,
    topic      text    NOT NULL,
    seq        bigint  NOT NULL,
    event_type text    NOT NULL,
    key_id     text    NOT NULL,  -- the key that sealed content ('' if unsealed: tests)
    content    bytea   NOT NULL,  -- msgpack, AES-GCM sealed: chat text is encrypted at rest
    removes    text,
    ts_ms      bigint  NOT NULL,  -- the event's ts, as first published
    PRIMARY KEY (tenant, kind, entity_id, topic, seq)
);
