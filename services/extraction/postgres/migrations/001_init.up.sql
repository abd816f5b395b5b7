-- The consents this service has data for. The consent service owns consents; a row here says
-- that data was written for one, numbers the changes to its transactions (the cursors of
-- /transactions:sync), and, once the consent has ended, when its data goes. The row outlives
-- the data, so that nothing is written for the consent again.
CREATE TABLE consents (
    id             text PRIMARY KEY,
    client_id      text NOT NULL,
    user_id        text NOT NULL,
    institution_id text NOT NULL,
    connection_id  text NOT NULL,
    version        bigint NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL,
    ended_at       timestamptz,
    purge_after    timestamptz,
    purged_at      timestamptz
);

CREATE TABLE accounts (
    id                text PRIMARY KEY,
    client_id         text NOT NULL,
    consent_id        text NOT NULL REFERENCES consents (id),
    user_id           text NOT NULL,
    institution_id    text NOT NULL,
    upstream_id       text NOT NULL,
    type              text NOT NULL,
    subtype           text NOT NULL,
    name              text NOT NULL,
    mask              text NOT NULL,
    currency          text NOT NULL,
    bank_code         text NOT NULL,
    has_balance       boolean NOT NULL,
    balance_current   bigint NOT NULL,
    balance_available bigint,
    balance_limit     bigint,
    balance_as_of     timestamptz,
    -- When the upstream list last applied was read: an older one is not applied over it.
    transactions_fetched_at timestamptz,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    UNIQUE (consent_id, upstream_id)
);
CREATE INDEX accounts_client_consent ON accounts (client_id, consent_id, id);

-- Transactions keep their id for life; upstream_id is the upstream's current id for them.
-- version is the consent's change number of the last change, created_version of the first;
-- a removed transaction stays as a tombstone so that cursors older than its removal see it go.
CREATE TABLE transactions (
    id                text PRIMARY KEY,
    client_id         text NOT NULL,
    consent_id        text NOT NULL REFERENCES consents (id),
    account_id        text NOT NULL REFERENCES accounts (id),
    upstream_id       text NOT NULL,
    amount_minor      bigint NOT NULL,
    currency          text NOT NULL,
    pending           boolean NOT NULL,
    booking_date      date NOT NULL,
    value_date        date,
    description       text NOT NULL,
    counterparty_name text NOT NULL,
    counterparty_type text NOT NULL,
    category          text NOT NULL,
    removed           boolean NOT NULL DEFAULT false,
    created_version   bigint NOT NULL,
    version           bigint NOT NULL,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL
);
CREATE INDEX transactions_changes ON transactions (consent_id, version);
CREATE INDEX transactions_by_date ON transactions (account_id, booking_date DESC, id DESC) WHERE NOT removed;

-- The account holder's identity, sealed (it is personal data: tax id, e-mails, addresses).
CREATE TABLE identities (
    consent_id text PRIMARY KEY REFERENCES consents (id),
    client_id  text NOT NULL,
    sealed     bytea NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);

CREATE TABLE extractions (
    id          text PRIMARY KEY,
    client_id   text NOT NULL,
    consent_id  text NOT NULL,
    product     text NOT NULL,
    status      text NOT NULL CHECK (status IN ('PENDING', 'SUCCEEDED', 'FAILED')),
    reason      text NOT NULL DEFAULT '',
    added       int NOT NULL DEFAULT 0,
    modified    int NOT NULL DEFAULT 0,
    removed     int NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL,
    finished_at timestamptz
);
CREATE INDEX extractions_client ON extractions (client_id, id);

-- Reports hold figures computed from a consent's data: they go with it.
CREATE TABLE reports (
    id          text PRIMARY KEY,
    client_id   text NOT NULL,
    consent_id  text NOT NULL,
    type        text NOT NULL,
    status      text NOT NULL CHECK (status IN ('PENDING', 'SUCCEEDED', 'FAILED')),
    reason      text NOT NULL DEFAULT '',
    body        jsonb,
    created_at  timestamptz NOT NULL,
    finished_at timestamptz
);
CREATE INDEX reports_consent ON reports (consent_id);

-- request_id idempotency: the first response is kept (sealed) for a day.
CREATE TABLE idempotency_keys (
    scope       text NOT NULL,
    request_id  text NOT NULL,
    fingerprint bytea NOT NULL,
    response    bytea,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (scope, request_id)
);
