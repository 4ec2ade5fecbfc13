-- Chat messages as a query table: a projection of ChatRoom's Posted events, written in the
-- same transaction as the log row (history and, later, search read it).
CREATE TABLE chat_messages (
    tenant        text        NOT NULL,
    room_id       text        NOT NULL,
    seq           bigint      NOT NULL,
    message_id    text        NOT NULL,
    sender        text        NOT NULL,
    client_msg_id text        NOT NULL,
    body          text        NOT NULL,
    reply_to      text,
    sent_at       timestamptz NOT NULL,
    PRIMARY KEY (tenant, room_id, seq)
);
CREATE UNIQUE INDEX chat_messages_id ON chat_messages (tenant, message_id);
