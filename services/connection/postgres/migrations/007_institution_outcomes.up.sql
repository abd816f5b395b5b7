-- Finished connections per institution and outcome, in five-minute buckets, counted in the
-- transaction that finishes each connection: the catalog's observed health reads the last hour
-- of them (a primary-key range per institution), and housekeeping prunes the old ones.
CREATE TABLE institution_outcomes (
    institution_id     text NOT NULL,
    bucket             timestamptz NOT NULL,
    succeeded          int NOT NULL DEFAULT 0,
    user_errors        int NOT NULL DEFAULT 0,
    institution_errors int NOT NULL DEFAULT 0,
    internal_errors    int NOT NULL DEFAULT 0,
    PRIMARY KEY (institution_id, bucket)
);
CREATE INDEX institution_outcomes_bucket ON institution_outcomes (bucket);
