-- The sender's record of each reminder (one row per maintenance.due id): written before the
-- provider is called and again with its answer, so a redelivered reminder is never sent twice.
CREATE TABLE reminder_dispatch (
    reminder_id          text PRIMARY KEY,
    id_customer          uuid NOT NULL,
    id_vehicle           uuid NOT NULL,
    phone                text NOT NULL,
    customer_name        text,
    plate_number         text,
    -- sending: a provider call may be in progress until lease_until;
    -- retrying: the last call failed transiently; sent / failed: final.
    status               text NOT NULL CHECK (status IN ('sending', 'retrying', 'sent', 'failed')),
    attempts             integer NOT NULL DEFAULT 0,
    lease_until          timestamptz,
    provider             text NOT NULL,
    provider_message_id  text,
    error_code           text,
    error                text,
    outcome_at           timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX reminder_dispatch_status_idx ON reminder_dispatch (status) WHERE status IN ('sending', 'retrying');

-- One row per producer scan, for operators (and for the missed-run catch-up).
CREATE TABLE producer_runs (
    id                 uuid PRIMARY KEY,
    run_date           date NOT NULL,
    trigger            text NOT NULL,
    status             text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    started_at         timestamptz NOT NULL DEFAULT now(),
    finished_at        timestamptz,
    vehicles_scanned   bigint NOT NULL DEFAULT 0,
    events_published   bigint NOT NULL DEFAULT 0,
    skipped_invalid_phone bigint NOT NULL DEFAULT 0,
    skipped_invalid_data  bigint NOT NULL DEFAULT 0,
    error              text
);
CREATE INDEX producer_runs_run_date_idx ON producer_runs (run_date, status);
