-- The catalog, filled by each provider's adapter. An institution's id is ours and stays put
-- across syncs; (provider, external_id) is how the provider names it.
CREATE TABLE institutions (
    id                text PRIMARY KEY,
    provider          text NOT NULL,
    external_id       text NOT NULL,
    organization_id   text NOT NULL,
    organization_name text NOT NULL,
    name              text NOT NULL,
    country           text NOT NULL,
    personal          boolean NOT NULL,
    business          boolean NOT NULL,
    products          text[] NOT NULL,
    auth              text NOT NULL,
    fields            jsonb NOT NULL,
    sources           text[] NOT NULL,
    logo_url          text NOT NULL,
    health            text NOT NULL,
    updated_at        timestamptz NOT NULL,
    CONSTRAINT institutions_provider_external_id UNIQUE (provider, external_id)
);
CREATE INDEX institutions_country ON institutions (country, id);

-- credentials, provider_state and answers are sealed (AES-256-GCM, bound to the connection id);
-- redirect_state is the keyed hash of the single-use state of a redirect, cleared when used.
CREATE TABLE connections (
    id                text PRIMARY KEY,
    client_id         text NOT NULL,
    user_id           text NOT NULL,
    institution_id    text NOT NULL REFERENCES institutions (id),
    provider          text NOT NULL,
    status            text NOT NULL,
    reason            text NOT NULL DEFAULT '',
    upstream_code     text NOT NULL DEFAULT '',
    challenge         jsonb,
    authorization_url text NOT NULL DEFAULT '',
    username_hint     text NOT NULL DEFAULT '',
    consent_id        text NOT NULL DEFAULT '',
    credentials       bytea,
    provider_state    bytea,
    answers           bytea,
    redirect_state    bytea UNIQUE,
    round             int NOT NULL DEFAULT 0,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL
);
CREATE INDEX connections_client_id ON connections (client_id, id);
CREATE INDEX connections_client_user ON connections (client_id, user_id, id);

CREATE TABLE connection_steps (
    connection_id text NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    seq           bigserial,
    status        text NOT NULL,
    reason        text NOT NULL,
    upstream_code text NOT NULL,
    message       text NOT NULL,
    at            timestamptz NOT NULL,
    PRIMARY KEY (connection_id, seq)
);
