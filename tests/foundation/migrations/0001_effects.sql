-- A stand-in for a service's own tables: a state change on one side, effects on the other.
CREATE TABLE debtors (debtor_id uuid PRIMARY KEY, name text NOT NULL);
CREATE TABLE effects (
    id bigserial PRIMARY KEY,
    debtor_id uuid NOT NULL,
    event_id uuid NOT NULL,
    replica text NOT NULL DEFAULT ''
);
