-- The upstream's own names for a login (Powens' user and connection ids), so that a webhook
-- that names only those reaches the connection. A ref belongs to one connection: a second login
-- claiming it does not take it over.
CREATE TABLE connection_refs (
    provider      text NOT NULL,
    ref           text NOT NULL,
    connection_id text NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    PRIMARY KEY (provider, ref)
);
CREATE INDEX connection_refs_connection ON connection_refs (connection_id);
