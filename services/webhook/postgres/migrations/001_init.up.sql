-- Client webhook endpoints. Secrets are sealed (AES-256-GCM, bound to the endpoint id): they
-- must be usable to sign, so they cannot be hashed.
CREATE TABLE endpoints (
    id                          text PRIMARY KEY,
    client_id                   text NOT NULL,
    url                         text NOT NULL,
    event_types                 text[] NOT NULL DEFAULT '{}',
    enabled                     boolean NOT NULL DEFAULT true,
    description                 text NOT NULL DEFAULT '',
    request_id                  text,
    secret                      bytea NOT NULL,
    previous_secret             bytea,
    previous_secret_expires_at  timestamptz,
    created_at                  timestamptz NOT NULL,
    updated_at                  timestamptz NOT NULL
);
CREATE INDEX endpoints_client ON endpoints (client_id, id);
CREATE UNIQUE INDEX endpoints_request_id ON endpoints (client_id, request_id) WHERE request_id IS NOT NULL;

-- The event log. seq is given under a transaction-level advisory lock, so events become visible
-- in seq order and a feed reader's cursor never skips one that commits late.
CREATE TABLE events (
    id          text PRIMARY KEY,
    seq         bigint NOT NULL UNIQUE,
    client_id   text NOT NULL,
    type        text NOT NULL,
    version     int NOT NULL,
    created_at  timestamptz NOT NULL,
    flow_id     text NOT NULL,
    data        jsonb NOT NULL,
    recorded_at timestamptz NOT NULL
);
CREATE SEQUENCE events_seq OWNED BY events.seq;
CREATE INDEX events_feed ON events (client_id, seq);
CREATE INDEX events_flow ON events (client_id, flow_id, seq);
CREATE INDEX events_created ON events (created_at);

CREATE TABLE deliveries (
    id              text PRIMARY KEY,
    client_id       text NOT NULL,
    event_id        text NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    endpoint_id     text NOT NULL,
    status          text NOT NULL CHECK (status IN ('PENDING', 'DELIVERED', 'FAILED')),
    attempts        int NOT NULL DEFAULT 0,
    next_attempt_at timestamptz,
    window_start    timestamptz NOT NULL,
    -- attempts made before window_start: the backoff counts from there.
    window_attempts int NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL,
    delivered_at    timestamptz,
    -- generation counts redeliveries: each has its own job, and a job of an earlier one ends
    -- without posting.
    generation      int NOT NULL DEFAULT 0,
    -- parked: due, but waiting for one of its endpoint's slots (the endpoint is slow); a
    -- finished attempt to the endpoint wakes the oldest parked delivery.
    parked          boolean NOT NULL DEFAULT false,
    UNIQUE (event_id, endpoint_id)
);
CREATE INDEX deliveries_parked ON deliveries (endpoint_id, next_attempt_at, id) WHERE parked;
CREATE INDEX deliveries_client ON deliveries (client_id, id);
CREATE INDEX deliveries_endpoint ON deliveries (endpoint_id, status, created_at);

CREATE TABLE delivery_attempts (
    delivery_id   text NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    number        int NOT NULL,
    at            timestamptz NOT NULL,
    status_code   int NOT NULL,
    latency_ms    bigint NOT NULL,
    error         text NOT NULL,
    response_body text NOT NULL,
    PRIMARY KEY (delivery_id, number)
);
