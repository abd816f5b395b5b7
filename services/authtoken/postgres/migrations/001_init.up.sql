CREATE TABLE clients (
    id            text PRIMARY KEY,
    name          text NOT NULL,
    redirect_uris text[] NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL
);

-- Secrets are stored only as keyed hashes (HMAC-SHA256 with the service's hash key).
CREATE TABLE api_keys (
    id          text PRIMARY KEY,
    client_id   text NOT NULL REFERENCES clients (id),
    name        text NOT NULL,
    secret_hash bytea NOT NULL UNIQUE,
    secret_hint text NOT NULL,
    created_at  timestamptz NOT NULL,
    revoked_at  timestamptz
);
CREATE INDEX api_keys_client_id ON api_keys (client_id, id);

-- A family is every refresh token descended from one client_credentials grant. Presenting a token
-- that was already rotated revokes the whole family (RFC 6819 §5.2.2.3).
CREATE TABLE refresh_tokens (
    token_hash        bytea PRIMARY KEY,
    family_id         text NOT NULL,
    client_id         text NOT NULL REFERENCES clients (id),
    api_key_id        text NOT NULL REFERENCES api_keys (id),
    created_at        timestamptz NOT NULL,
    family_expires_at timestamptz NOT NULL,
    rotated_at        timestamptz,
    revoked_at        timestamptz
);
CREATE INDEX refresh_tokens_family_id ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_api_key_id ON refresh_tokens (api_key_id);

CREATE TABLE users (
    id           text PRIMARY KEY,
    client_id    text NOT NULL REFERENCES clients (id),
    external_ref text NOT NULL,
    kind         text NOT NULL,
    tax_id_type  text,
    tax_id       text,
    created_at   timestamptz NOT NULL,
    CONSTRAINT users_external_ref_unique UNIQUE (client_id, external_ref)
);
CREATE INDEX users_client_id ON users (client_id, id);

CREATE TABLE link_tokens (
    id           text PRIMARY KEY,
    client_id    text NOT NULL REFERENCES clients (id),
    user_id      text NOT NULL REFERENCES users (id),
    token_hash   bytea NOT NULL UNIQUE,
    products     text[] NOT NULL,
    country      text NOT NULL,
    language     text NOT NULL,
    redirect_uri text NOT NULL,
    consent_id   text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    exchanged_at timestamptz
);

-- Private keys are sealed (AES-256-GCM). A key signs from activate_at on; it is published from
-- creation until publish_until, which is set when a newer key takes over, late enough for every
-- token it signed to have expired.
CREATE TABLE signing_keys (
    id             text PRIMARY KEY,
    public_key     bytea NOT NULL,
    private_sealed bytea NOT NULL,
    created_at     timestamptz NOT NULL,
    activate_at    timestamptz NOT NULL,
    publish_until  timestamptz
);

-- request_id idempotency: the first response is kept (sealed: it may hold a secret) for a day.
CREATE TABLE idempotency_keys (
    scope       text NOT NULL,
    request_id  text NOT NULL,
    fingerprint bytea NOT NULL,
    response    bytea,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (scope, request_id)
);
