-- Towns (tenants) and their billing settings (O1). The invoices service is their owner; other services
-- keep the parts they need from the invoices.town_configured event.
CREATE TABLE towns (
    town_id uuid PRIMARY KEY,
    slug text NOT NULL UNIQUE,
    name text NOT NULL,
    public_url text NOT NULL,
    contact_email text NOT NULL,
    logo_url text,
    alerts_enabled boolean NOT NULL DEFAULT true,
    password_min_length integer NOT NULL DEFAULT 8 CHECK (password_min_length BETWEEN 1 AND 64),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE town_hosts (
    host text PRIMARY KEY,
    town_id uuid NOT NULL REFERENCES towns ON DELETE CASCADE
);
CREATE INDEX town_hosts_town ON town_hosts (town_id);

-- The billing office's API keys; only a SHA-256 of each key is kept (keys are 256 random bits).
CREATE TABLE town_api_keys (
    key_id uuid PRIMARY KEY,
    town_id uuid NOT NULL REFERENCES towns ON DELETE CASCADE,
    key_hash bytea NOT NULL UNIQUE,
    label text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);

CREATE TABLE regies (
    regie_id uuid PRIMARY KEY,
    town_id uuid NOT NULL REFERENCES towns ON DELETE CASCADE,
    code text NOT NULL,
    name text NOT NULL,
    payfip_client_number text NOT NULL CHECK (payfip_client_number ~ '^[0-9]{6}$'),
    payfip_mode text NOT NULL CHECK (payfip_mode IN ('T', 'X', 'W')),
    online_payment_enabled boolean NOT NULL DEFAULT true,
    grouped_payment_allowed boolean NOT NULL DEFAULT false,
    UNIQUE (town_id, code)
);

-- Debtors (the people the office bills) and the e-mail addresses the office knows for each.
CREATE TABLE debtors (
    debtor_id uuid PRIMARY KEY,
    town_id uuid NOT NULL REFERENCES towns ON DELETE CASCADE,
    reference text NOT NULL,
    name text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (town_id, reference)
);

CREATE TABLE debtor_emails (
    debtor_id uuid NOT NULL REFERENCES debtors ON DELETE CASCADE,
    email text NOT NULL CHECK (email = lower(email)),
    PRIMARY KEY (debtor_id, email)
);
CREATE INDEX debtor_emails_email ON debtor_emails (email);
