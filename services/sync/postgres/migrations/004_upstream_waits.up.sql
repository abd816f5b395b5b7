-- A sync's user waiting for a batch provider (Guiabolso) to refresh one of its consents. The
-- user's job records the waits; the provider's job sets request_id when a request carries the
-- wait's ref; the provider's event, or the deadline, settles it. client_id and user_id are kept
-- to queue the user's job again when its last wait settles.
CREATE TABLE upstream_waits (
    sync_id         text NOT NULL,
    position        int NOT NULL,
    consent_id      text NOT NULL,
    client_id       text NOT NULL,
    user_id         text NOT NULL,
    provider        text NOT NULL,
    ref             text NOT NULL,
    request_id      text,
    status          text NOT NULL DEFAULT 'PENDING'
                    CHECK (status IN ('PENDING', 'FINISHED', 'NOT_FOUND', 'TIMEOUT', 'FAILED')),
    reason          text NOT NULL DEFAULT '',
    failed_accounts text[] NOT NULL DEFAULT '{}',
    deadline        timestamptz NOT NULL,
    settled_at      timestamptz,
    PRIMARY KEY (sync_id, position, consent_id),
    CHECK ((status = 'PENDING') = (settled_at IS NULL))
);
-- The provider's job: a sync's waits not sent yet, and those past their deadline.
CREATE INDEX upstream_waits_pending ON upstream_waits (sync_id, provider, deadline) WHERE status = 'PENDING';
-- An event settles the wait of its request and ref.
CREATE INDEX upstream_waits_request ON upstream_waits (provider, request_id, ref) WHERE status = 'PENDING';

-- A batch provider's events, kept so that one received before its request's id was recorded
-- still settles its wait, and so that a repeated event changes nothing. Deleted after 30 days.
CREATE TABLE upstream_events (
    provider        text NOT NULL,
    request_id      text NOT NULL,
    ref             text NOT NULL,
    not_found       boolean NOT NULL,
    failed_accounts text[] NOT NULL,
    received_at     timestamptz NOT NULL,
    PRIMARY KEY (provider, request_id, ref)
);
CREATE INDEX upstream_events_received ON upstream_events (received_at);
