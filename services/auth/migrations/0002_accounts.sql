-- Residents' accounts: one per e-mail address per town.
CREATE TABLE accounts (
    account_id uuid PRIMARY KEY,
    town_id uuid NOT NULL,
    email text NOT NULL CHECK (email = lower(email)),
    password_hash text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    password_changed_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (town_id, email)
);

-- One-time links (activation, password reset, e-mail change). Only a hash of each token is kept; a link
-- is spent by the one UPDATE that sets used_at, so of many concurrent uses exactly one wins.
CREATE TABLE link_tokens (
    token_hash bytea PRIMARY KEY,
    purpose text NOT NULL CHECK (purpose IN ('activation', 'reset', 'email_change')),
    town_id uuid NOT NULL,
    email text NOT NULL,
    account_id uuid REFERENCES accounts ON DELETE CASCADE,
    new_email text,
    -- False for the requests of unknown addresses: they do the same work but can never be spent.
    usable boolean NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at timestamptz
);
CREATE INDEX link_tokens_expiry ON link_tokens (expires_at);

-- Sessions: the cookie holds a random id, the table its hash.
CREATE TABLE sessions (
    session_hash bytea PRIMARY KEY,
    account_id uuid NOT NULL REFERENCES accounts ON DELETE CASCADE,
    town_id uuid NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    remembered boolean NOT NULL DEFAULT false,
    revoked_at timestamptz
);
CREATE INDEX sessions_account ON sessions (account_id) WHERE revoked_at IS NULL;

-- "Se souvenir de moi": a selector to find the row and the hash of a validator that rotates on each use.
CREATE TABLE remember_tokens (
    selector text PRIMARY KEY,
    validator_hash bytea NOT NULL,
    account_id uuid NOT NULL REFERENCES accounts ON DELETE CASCADE,
    town_id uuid NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz
);
CREATE INDEX remember_tokens_account ON remember_tokens (account_id) WHERE revoked_at IS NULL;

-- Failed logins per account and per client address, for the growing delay.
CREATE TABLE login_failures (
    scope text NOT NULL CHECK (scope IN ('account', 'client')),
    key text NOT NULL,
    failures integer NOT NULL,
    last_failure_at timestamptz NOT NULL,
    PRIMARY KEY (scope, key)
);

-- Activation and reset requests per address, for the hourly limit of e-mails.
CREATE TABLE email_requests (
    town_id uuid NOT NULL,
    email text NOT NULL,
    purpose text NOT NULL,
    requested_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX email_requests_recent ON email_requests (town_id, email, purpose, requested_at);
