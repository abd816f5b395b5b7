-- Where the user's browser goes once a REDIRECT institution has sent them back.
ALTER TABLE connections ADD COLUMN redirect_uri text NOT NULL DEFAULT '';
