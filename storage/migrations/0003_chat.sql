-- Chat, complete (issue 4). Message text is sealed (AES-GCM, storage/crypto.py) with the id of
-- the key that sealed it; `body` keeps only rows written before this migration, in plain text,
-- until `rthub keys rotate` seals them. The search vector is computed from the plain text at
-- write time (never stored in plain text), NULL where the room turned search off or the
-- message was deleted.
ALTER TABLE chat_messages
    ALTER COLUMN body DROP NOT NULL,
    ADD COLUMN sealed      bytea,
    ADD COLUMN key_id      text,
    ADD COLUMN tsv         tsvector,
    ADD COLUMN attachments text[]      NOT NULL DEFAULT '{}',
    ADD COLUMN edited_at   timestamptz,
    ADD COLUMN deleted_at  timestamptz,
    ADD COLUMN deleted_by  text;
UPDATE chat_messages SET tsv = to_tsvector('simple', body) WHERE body IS NOT NULL;
CREATE INDEX chat_messages_tsv ON chat_messages USING gin (tsv);
CREATE INDEX chat_messages_age ON chat_messages (tenant, room_id, sent_at);
CREATE INDEX chat_messages_key ON chat_messages (key_id);

-- Room settings the queries need (search on/off, retention); the ChatRoom entity is the
-- authority, this is its projection.
CREATE TABLE chat_rooms (
    tenant      text        NOT NULL,
    room_id     text        NOT NULL,
    name        text        NOT NULL,
    visibility  text        NOT NULL,
    owner       text        NOT NULL,
    search      boolean     NOT NULL DEFAULT true,
    retention_s bigint,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant, room_id)
);
CREATE INDEX chat_rooms_retention ON chat_rooms (tenant, room_id) WHERE retention_s IS NOT NULL;

-- Who may read which room (search and attachment downloads check it in SQL).
CREATE TABLE chat_members (
    tenant    text        NOT NULL,
    room_id   text        NOT NULL,
    user_id   text        NOT NULL,
    role      text        NOT NULL,
    joined_at timestamptz NOT NULL,
    PRIMARY KEY (tenant, room_id, user_id)
);
CREATE INDEX chat_members_user ON chat_members (tenant, user_id);

-- Uploaded files: bytes sealed in the blob store under blob_key, sealed with key_id.
CREATE TABLE attachments (
    tenant        text        NOT NULL,
    attachment_id text        NOT NULL,
    uploader      text        NOT NULL,
    content_type  text        NOT NULL,
    size          bigint      NOT NULL,
    filename      text        NOT NULL,
    key_id        text        NOT NULL,
    blob_key      text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, attachment_id)
);

-- Where each attachment was posted: a download is allowed to members of one of these rooms.
CREATE TABLE chat_attachments (
    tenant        text NOT NULL,
    attachment_id text NOT NULL,
    room_id       text NOT NULL,
    message_id    text NOT NULL,
    PRIMARY KEY (tenant, attachment_id, room_id, message_id)
);
CREATE INDEX chat_attachments_message ON chat_attachments (tenant, room_id, message_id);

-- Who did what to which room or message, when, from where. Rows are never changed or removed.
CREATE TABLE audit_log (
    id         bigserial   PRIMARY KEY,
    tenant     text        NOT NULL,
    at         timestamptz NOT NULL,
    actor      text        NOT NULL,
    action     text        NOT NULL,
    room_id    text,
    message_id text,
    target     text,
    ip         text,
    details    jsonb       NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_tenant ON audit_log (tenant, id);
CREATE FUNCTION audit_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END $$;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_is_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_is_append_only();
