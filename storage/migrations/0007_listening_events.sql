-- Listening events (issue 16): what the recommendation models train on. Written by the
-- journal with the events that made them (a party's controls, a playlist's ops), so they
-- are exactly what the hub committed.
CREATE TABLE listening_events (
    id          bigserial   PRIMARY KEY,
    tenant      text        NOT NULL,
    user_id     text        NOT NULL,
    track       text        NOT NULL,  -- the track's id (its "id" field, or the track itself)
    event       text        NOT NULL,  -- play, skip, completed, seek, added, removed
    position_ms integer,               -- where in the track: a skip's, a seek's target
    context     text        NOT NULL,  -- party:<id> or playlist:<id>
    at          timestamptz NOT NULL
);
CREATE INDEX listening_events_time ON listening_events (tenant, at);
