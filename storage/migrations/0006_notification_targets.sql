-- Notification targets (issue 15): where a user is reached outside the hub (an FCM or APNs
-- device token, a Web Push subscription, an email address, a phone number), registered with
-- POST /v1/devices and pruned when the provider says the token is dead. A token belongs to
-- one user: registering it for another (a shared device, logged in anew) moves it.
CREATE TABLE notification_targets (
    tenant       text        NOT NULL,
    kind         text        NOT NULL,  -- fcm, apns, webpush, email, sms
    address      text        NOT NULL,  -- token, subscription endpoint, address, number
    user_id      text        NOT NULL,
    app          text        NOT NULL DEFAULT 'default',
    data         jsonb       NOT NULL DEFAULT '{}',  -- webpush: {p256dh, auth}
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_sent_at timestamptz,
    PRIMARY KEY (tenant, kind, address)
);
CREATE INDEX notification_targets_user ON notification_targets (tenant, user_id);

-- The channels a notification was sent to, and the digest it waits in (LOW ones, and NORMAL
-- ones where the user chose it, merged per user and category).
ALTER TABLE notifications ADD COLUMN digest_key text;
CREATE INDEX notifications_digest ON notifications (tenant, digest_key)
    WHERE digest_key IS NOT NULL AND status = 'queued';

-- What /metrics reports: deliveries by channel and state over the last hour.
CREATE INDEX notification_deliveries_recent ON notification_deliveries (updated_at);
