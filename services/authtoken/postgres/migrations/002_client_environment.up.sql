-- A client is in the sandbox or in production for life; existing clients were sandbox clients.
ALTER TABLE clients
    ADD COLUMN environment text NOT NULL DEFAULT 'sandbox' CHECK (environment IN ('sandbox', 'production')),
    ADD COLUMN allowed_origins text[] NOT NULL DEFAULT '{}';
