-- Upstream providers' webhooks, each recorded once: (provider, external_id) is how a replay is
-- recognised.
CREATE TABLE inbound_webhooks (
    id          text PRIMARY KEY,
    provider    text NOT NULL,
    external_id text NOT NULL,
    type        text NOT NULL,
    signed_at   timestamptz NOT NULL,
    received_at timestamptz NOT NULL,
    body        bytea NOT NULL,
    routed_at   timestamptz,
    UNIQUE (provider, external_id)
);
CREATE INDEX inbound_webhooks_received ON inbound_webhooks (received_at);
