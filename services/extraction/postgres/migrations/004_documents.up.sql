-- What upstreams push by webhook instead of answering reads (Klavi's reports): the latest of each
-- kind per consent, sealed, read by the provider's adapter on the consent's next refresh.
CREATE TABLE upstream_documents (
    consent_id  text NOT NULL REFERENCES consents (id),
    client_id   text NOT NULL,
    kind        text NOT NULL,
    sealed      bytea NOT NULL,
    received_at timestamptz NOT NULL,
    PRIMARY KEY (consent_id, kind)
);
