-- Notifications (issue 15): the durable queue every dispatcher works from, highest priority
-- first, and each notification x channel's delivery state (only moving forward).
CREATE TABLE notifications (
    tenant          text        NOT NULL,
    id              text        NOT NULL,
    user_id         text        NOT NULL,
    category        text        NOT NULL,
    priority        smallint    NOT NULL,
    title           text        NOT NULL,
    body            text        NOT NULL,
    data            jsonb       NOT NULL DEFAULT '{}',
    idempotency_key text,
    status          text        NOT NULL DEFAULT 'queued',  -- queued, done, failed
    attempts        integer     NOT NULL DEFAULT 0,
    due_at          timestamptz NOT NULL DEFAULT now(),  -- not before: a retry, a claim's lease
    created_at      timestamptz NOT NULL DEFAULT now(),
    error           text,
    PRIMARY KEY (tenant, id)
);
CREATE UNIQUE INDEX notifications_idempotency ON notifications (tenant, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX notifications_queue ON notifications (priority DESC, created_at)
    WHERE status = 'queued';

CREATE TABLE notification_deliveries (
    tenant     text        NOT NULL,
    id         text        NOT NULL,
    channel    text        NOT NULL,  -- in_app, push, email, sms, pusher
    state      text        NOT NULL,  -- queued, sent, delivered, seen, read, failed
    error      text,
    attempts   integer     NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, id, channel)
);
