-- Durable log of entity events (append-only) and write-behind state checkpoints.
CREATE TABLE entity_log (
    tenant      text        NOT NULL,
    kind        text        NOT NULL,
    entity_id   text        NOT NULL,
    version     bigint      NOT NULL,
    event_type  text        NOT NULL,
    payload     bytea       NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, kind, entity_id, version)
);

-- Rows are facts: never rewritten. (Retention may delete whole rows later.)
CREATE FUNCTION entity_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'entity_log is append-only';
END $$;
CREATE TRIGGER entity_log_no_update BEFORE UPDATE ON entity_log
    FOR EACH ROW EXECUTE FUNCTION entity_log_is_append_only();

CREATE TABLE entity_checkpoints (
    tenant    text        NOT NULL,
    kind      text        NOT NULL,
    entity_id text        NOT NULL,
    version   bigint      NOT NULL,
    state     bytea       NOT NULL,
    saved_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, kind, entity_id)
);
