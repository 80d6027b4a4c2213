-- What auth keeps of each town (from invoices.town_configured): enough to build links and check passwords.
CREATE TABLE towns (
    town_id uuid PRIMARY KEY,
    slug text NOT NULL,
    name text NOT NULL,
    public_url text NOT NULL,
    password_min_length integer NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- The e-mail addresses the billing office knows, per debtor (from invoices.debtor_upserted). Only these
-- may activate an account.
CREATE TABLE known_emails (
    town_id uuid NOT NULL,
    debtor_id uuid NOT NULL,
    email text NOT NULL CHECK (email = lower(email)),
    PRIMARY KEY (town_id, debtor_id, email)
);
CREATE INDEX known_emails_lookup ON known_emails (town_id, email);
