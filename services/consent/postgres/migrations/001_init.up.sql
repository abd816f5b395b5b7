-- A consent is a user's permission for a client to read products at an institution until
-- expires_at. user_id and institution_id name rows of other services (authtoken, connection):
-- they are not checked here; the connection service checks both when it links the institution.
CREATE TABLE consents (
    id             text PRIMARY KEY,
    client_id      text NOT NULL,
    user_id        text NOT NULL,
    institution_id text NOT NULL,
    connection_id  text NOT NULL DEFAULT '',
    products       text[] NOT NULL,
    status         text NOT NULL
                   CHECK (status IN ('AWAITING_AUTHORISATION', 'AUTHORISED', 'REJECTED', 'REVOKED', 'EXPIRED')),
    expires_at     timestamptz NOT NULL,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL
);
CREATE INDEX consents_client_id ON consents (client_id, id);
CREATE INDEX consents_client_user ON consents (client_id, user_id, id);
CREATE INDEX consents_client_status ON consents (client_id, status, id);

-- Every change of a consent's status, its creation included, in order.
CREATE TABLE consent_history (
    consent_id text NOT NULL REFERENCES consents (id) ON DELETE CASCADE,
    seq        bigserial,
    status     text NOT NULL,
    reason     text NOT NULL,
    at         timestamptz NOT NULL,
    PRIMARY KEY (consent_id, seq)
);

-- request_id idempotency: the first response is kept (sealed) for a day.
CREATE TABLE idempotency_keys (
    scope       text NOT NULL,
    request_id  text NOT NULL,
    fingerprint bytea NOT NULL,
    response    bytea,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (scope, request_id)
);
