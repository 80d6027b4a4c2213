-- What the notifier keeps of each town (from invoices.town_configured), for its e-mails.
CREATE TABLE towns (
    town_id uuid PRIMARY KEY,
    name text NOT NULL,
    public_url text NOT NULL,
    contact_email text NOT NULL,
    logo_url text,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Every e-mail the notifier was asked for, with its delivery state. One event gives at most one e-mail
-- per purpose: (event_id, purpose) is unique, and the inbox makes a redelivered event a no-op.
CREATE TABLE emails (
    email_id uuid PRIMARY KEY,
    event_id uuid NOT NULL,
    purpose text NOT NULL,
    town_id uuid,
    to_address text NOT NULL,
    reply_to text,
    subject text NOT NULL,
    text_body text NOT NULL,
    html_body text NOT NULL,
    -- Bodies holding a one-time link are blanked once sent (the link must not outlive its e-mail here).
    sensitive boolean NOT NULL DEFAULT false,
    state text NOT NULL DEFAULT 'queued'
        CHECK (state IN ('queued', 'sending', 'sent', 'failed', 'interrupted')),
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    sending_since timestamptz,
    sent_at timestamptz,
    UNIQUE (event_id, purpose)
);
CREATE INDEX emails_due ON emails (next_attempt_at) WHERE state = 'queued';
CREATE INDEX emails_sending ON emails (sending_since) WHERE state = 'sending';
CREATE INDEX emails_recipient ON emails (to_address, created_at);

CREATE FUNCTION emails_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('emails', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER emails_queued AFTER INSERT ON emails
    FOR EACH STATEMENT EXECUTE FUNCTION emails_notify();
