-- A sync is a client's batch of users being refreshed. Its counters move with its users'
-- results, in the transactions that record them, so they always add up to total_users.
CREATE TABLE syncs (
    id              text PRIMARY KEY,
    client_id       text NOT NULL,
    status          text NOT NULL CHECK (status IN ('RUNNING', 'COMPLETED')),
    total_users     int NOT NULL CHECK (total_users BETWEEN 1 AND 5000),
    pending_users   int NOT NULL CHECK (pending_users >= 0),
    succeeded_users int NOT NULL DEFAULT 0 CHECK (succeeded_users >= 0),
    partial_users   int NOT NULL DEFAULT 0 CHECK (partial_users >= 0),
    failed_users    int NOT NULL DEFAULT 0 CHECK (failed_users >= 0),
    not_found_users int NOT NULL DEFAULT 0 CHECK (not_found_users >= 0),
    created_at      timestamptz NOT NULL,
    completed_at    timestamptz,
    CHECK (total_users = pending_users + succeeded_users + partial_users + failed_users + not_found_users),
    CHECK ((status = 'COMPLETED') = (pending_users = 0)),
    CHECK ((status = 'COMPLETED') = (completed_at IS NOT NULL))
);

-- One user of a sync, at its position in the request, as the client named it (ref_kind and
-- ref_value). The fan-out sets user_id and resolved; the user's job (or the fan-out, for a user
-- not found) sets the final status once.
--
-- No foreign key to syncs: rows are only ever written with their sync, in its transaction, and
-- accepting a sync copies up to 5,000 of them in one COPY that a check per row would slow down.
-- No index beyond the key either, for the same reason: every query reads one sync's rows in
-- position order.
CREATE TABLE sync_users (
    sync_id     text NOT NULL,
    position    int NOT NULL CHECK (position >= 0),
    ref_kind    text NOT NULL CHECK (ref_kind IN ('user_id', 'external_ref')),
    ref_value   text NOT NULL,
    user_id     text NOT NULL DEFAULT '',
    resolved    boolean NOT NULL DEFAULT false,
    status      text NOT NULL DEFAULT 'PENDING'
                CHECK (status IN ('PENDING', 'SUCCESS', 'PARTIAL', 'ERROR', 'NOT_FOUND')),
    reason      text NOT NULL DEFAULT '',
    finished_at timestamptz,
    PRIMARY KEY (sync_id, position),
    CHECK ((status = 'PENDING') = (finished_at IS NULL)),
    CHECK (status = 'PENDING' OR resolved)
);

-- A finished user's results, one per account (account_id '' for a consent that could not be
-- refreshed at all), in the order they were reported.
CREATE TABLE sync_user_accounts (
    sync_id    text NOT NULL,
    position   int NOT NULL,
    seq        int NOT NULL,
    account_id text NOT NULL,
    consent_id text NOT NULL,
    status     text NOT NULL CHECK (status IN ('SUCCESS', 'ERROR')),
    reason     text NOT NULL,
    PRIMARY KEY (sync_id, position, seq),
    FOREIGN KEY (sync_id, position) REFERENCES sync_users (sync_id, position)
);

-- A consent's recurring refresh. An AUTHORISED consent has a live row; a consent that reached a
-- final status keeps a tombstone (its status, no interval, no next run), so that a late or
-- repeated AUTHORISED cannot bring the schedule back. Tombstones are deleted after 30 days.
CREATE TABLE schedules (
    consent_id     text PRIMARY KEY,
    client_id      text NOT NULL,
    user_id        text NOT NULL,
    consent_status text NOT NULL CHECK (consent_status IN ('AUTHORISED', 'REJECTED', 'REVOKED', 'EXPIRED')),
    changed_at     timestamptz NOT NULL,
    interval_hours int CHECK (interval_hours BETWEEN 1 AND 720),
    paused         boolean NOT NULL DEFAULT false,
    next_run_at    timestamptz,
    last_run_at    timestamptz,
    last_status    text NOT NULL DEFAULT '',
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CHECK ((consent_status = 'AUTHORISED') = (interval_hours IS NOT NULL AND next_run_at IS NOT NULL))
);
CREATE INDEX schedules_due ON schedules (next_run_at) WHERE consent_status = 'AUTHORISED' AND NOT paused;
CREATE INDEX schedules_ended ON schedules (changed_at) WHERE consent_status <> 'AUTHORISED';

-- request_id idempotency: the first response is kept (sealed) for a day.
CREATE TABLE idempotency_keys (
    scope       text NOT NULL,
    request_id  text NOT NULL,
    fingerprint bytea NOT NULL,
    response    bytea,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (scope, request_id)
);
