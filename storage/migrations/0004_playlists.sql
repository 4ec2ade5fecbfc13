-- Collaborative playlists (issue 5): every committed op, and a snapshot every 100 versions
-- (and at version 0), so any version opens from the nearest snapshot plus a few ops. Both
-- are projections of the Playlist entity's log, written in the same transaction.
CREATE TABLE playlist_ops (
    tenant      text        NOT NULL,
    playlist_id text        NOT NULL,
    version     bigint      NOT NULL,
    op          jsonb,
    author      text        NOT NULL,
    client_id   text        NOT NULL,  -- with client_seq: a client knows its own ops in
    client_seq  bigint      NOT NULL,  -- the history it fetches after a gap
    at          timestamptz NOT NULL,
    PRIMARY KEY (tenant, playlist_id, version)
);

CREATE TABLE playlist_snapshots (
    tenant      text   NOT NULL,
    playlist_id text   NOT NULL,
    version     bigint NOT NULL,
    items       jsonb  NOT NULL,
    PRIMARY KEY (tenant, playlist_id, version)
);
