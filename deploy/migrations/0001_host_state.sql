-- rhcos-deploy's shared state: the introspection inventory and every server's host events.
-- Applied once, in order, by PgState::connect (table rhcos_deploy_migrations records which).

-- One row per introspected host. The role, disk and hostname are decided once, by whichever
-- server got the host's first post, inside a transaction holding the inventory lock; the
-- constraints make a doubled hostname impossible even so.
CREATE TABLE inventory (
    mac        text PRIMARY KEY,
    hostname   text NOT NULL UNIQUE,
    role       text NOT NULL,
    record     jsonb NOT NULL,
    saved_by   text NOT NULL,
    saved_at   timestamptz NOT NULL DEFAULT now()
);

-- Every server's events, in the order the database received them: the shared timeline.
CREATE TABLE host_events (
    id      bigserial PRIMARY KEY,
    server  text NOT NULL,
    mac     text,
    at      timestamptz NOT NULL,
    event   jsonb NOT NULL
);
CREATE INDEX host_events_by_mac ON host_events (mac, id);
