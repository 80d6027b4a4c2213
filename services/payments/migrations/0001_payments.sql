-- Payments through PayFiP (R8-R10, R12, P1-P3). See services/payments/domain.py for the states and rules.

-- The parts of each town's settings payments needs, kept from invoices.town_configured.
CREATE TABLE towns (
    town_id uuid PRIMARY KEY,
    name text NOT NULL,
    public_url text NOT NULL,
    regies jsonb NOT NULL DEFAULT '[]',
    -- occurred_at of the event applied last: an older event arriving late changes nothing.
    configured_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- One attempt to pay one invoice, or several of one régie, in one PayFiP operation.
CREATE TABLE payment_attempts (
    payment_id uuid PRIMARY KEY,
    town_id uuid NOT NULL,
    account_id uuid NOT NULL,
    email text NOT NULL,
    regie_id uuid NOT NULL,
    regie_code text NOT NULL,
    regie_name text NOT NULL,
    numcli text NOT NULL CHECK (numcli ~ '^[0-9]{6}$'),
    saisie text NOT NULL CHECK (saisie IN ('T', 'X', 'W')),
    -- The invoice's PayFiP reference, or a grouping reference (G + YYYYMMDD + 10 base-32 characters).
    refdet text NOT NULL CHECK (refdet ~ '^[A-Za-z0-9]{6,30}$'),
    grouped boolean NOT NULL,
    exer text NOT NULL CHECK (exer ~ '^[0-9]{4}$'),
    label text NOT NULL,
    amount_cents bigint NOT NULL CHECK (amount_cents BETWEEN 100 AND 10000000),
    state text NOT NULL CHECK (state IN ('created', 'pending', 'paid', 'refused', 'abandoned', 'expired',
                                         'mismatch', 'failed_to_start')),
    created_at timestamptz NOT NULL,
    locked_until timestamptz NOT NULL,
    started_at timestamptz,            -- PayFiP gave the idOp
    settled_at timestamptz,            -- reached a final state
    result_code text CHECK (result_code IN ('P', 'V', 'R', 'Z', 'A')),
    provisional_result text,           -- 'A' seen before the idOp's 15 minutes were over
    authorisation_number text,
    paid_at timestamptz,               -- PayFiP's dattrans/heurtrans (Paris) in UTC
    settled_by text,                   -- notification, return, reconciler
    start_error_code text,
    start_error text,
    polls integer NOT NULL DEFAULT 0,
    next_poll_at timestamptz,
    last_poll_error text
);
CREATE INDEX payment_attempts_account ON payment_attempts (town_id, account_id, created_at DESC);
CREATE INDEX payment_attempts_due ON payment_attempts (next_poll_at) WHERE state IN ('created', 'pending');
-- A grouping reference names one operation only (an invoice's reference is reused by each new attempt).
CREATE UNIQUE INDEX payment_attempts_grouping_reference ON payment_attempts (refdet) WHERE grouped;

-- Which invoices and amounts an attempt covers (the record a grouped payment is reconciled with).
CREATE TABLE payment_items (
    payment_id uuid NOT NULL REFERENCES payment_attempts ON DELETE CASCADE,
    position integer NOT NULL,
    invoice_id uuid NOT NULL,
    number text NOT NULL,
    amount_cents bigint NOT NULL CHECK (amount_cents >= 0),
    PRIMARY KEY (payment_id, invoice_id),
    UNIQUE (payment_id, position)
);
CREATE INDEX payment_items_invoice ON payment_items (invoice_id);

-- The PayFiP operation of an attempt, with exactly what was sent: PayFiP's answers are checked against it.
CREATE TABLE payfip_operations (
    idop text PRIMARY KEY,
    payment_id uuid NOT NULL UNIQUE REFERENCES payment_attempts ON DELETE CASCADE,
    numcli text NOT NULL,
    refdet text NOT NULL,
    montant bigint NOT NULL,
    exer text NOT NULL,
    saisie text NOT NULL,
    objet text,
    urlnotif text NOT NULL,
    urlredirect text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- The in-progress lock (R10): at most one row per invoice. A start takes it with INSERT … ON CONFLICT
-- DO UPDATE … WHERE the old lock has ended, so two simultaneous starts cannot both get it.
CREATE TABLE invoice_locks (
    invoice_id uuid PRIMARY KEY,
    town_id uuid NOT NULL,
    payment_id uuid NOT NULL REFERENCES payment_attempts ON DELETE CASCADE,
    number text NOT NULL,
    locked_until timestamptz NOT NULL
);
CREATE INDEX invoice_locks_payment ON invoice_locks (payment_id);

-- Invoices the invoices service said were closed (cancelled, settled, declared), so that a start refuses
-- them even if its answer were stale, and a payment on one is flagged. Last event (by occurred_at) wins,
-- except that cancelled and settled are never reopened by a declaration's answer.
CREATE TABLE invoice_closures (
    invoice_id uuid PRIMARY KEY,
    town_id uuid NOT NULL,
    status text NOT NULL CHECK (status IN ('open', 'declared', 'paid_online', 'paid_elsewhere', 'cancelled')),
    payment_id uuid,
    changed_at timestamptz NOT NULL
);

-- Every exchange with PayFiP: when, what, how it went (the operations team's and the office's trail).
CREATE TABLE payfip_calls (
    id bigserial PRIMARY KEY,
    called_at timestamptz NOT NULL,    -- when the question left
    operation text NOT NULL,
    payment_id uuid,
    idop text,
    trigger text NOT NULL,
    caller text NOT NULL,              -- host:pid of the replica that called
    outcome text NOT NULL CHECK (outcome IN ('ok', 'fault', 'unavailable')),
    code text,
    http_status integer,
    duration_ms integer NOT NULL,
    error text
);
CREATE INDEX payfip_calls_payment ON payfip_calls (payment_id, called_at);

-- Anything the billing office must look at: a result that is not the payment we asked for, a payment
-- confirmed after we gave up, a payment of an invoice that was closed meanwhile.
CREATE TABLE incidents (
    incident_id uuid PRIMARY KEY,
    town_id uuid NOT NULL,
    payment_id uuid NOT NULL REFERENCES payment_attempts ON DELETE CASCADE,
    idop text,
    kind text NOT NULL,
    details jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (payment_id, kind)
);
CREATE INDEX incidents_town ON incidents (town_id, created_at DESC);
