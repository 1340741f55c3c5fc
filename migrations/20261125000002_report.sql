-- The report (one row per customer and vehicle) and the append-only history of every message.

CREATE TABLE whatsapp_report (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    id_customer        uuid NOT NULL,
    id_vehicle         uuid NOT NULL,
    last_message_date  timestamptz NOT NULL,
    frequency          integer NOT NULL CHECK (frequency >= 0),
    -- What the latest event said about the recipient, for pairs missing from the master data.
    customer_name      text,
    customer_phone     text,
    plate_number       text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (id_customer, id_vehicle)
);
CREATE INDEX whatsapp_report_recent_idx ON whatsapp_report (last_message_date DESC, id);
CREATE INDEX whatsapp_report_frequency_idx ON whatsapp_report (frequency DESC, id);
CREATE INDEX whatsapp_report_id_vehicle_idx ON whatsapp_report (id_vehicle);

-- Failures per pair; a pair that was never reached has no whatsapp_report row.
CREATE TABLE whatsapp_failure_report (
    id_customer     uuid NOT NULL,
    id_vehicle      uuid NOT NULL,
    failed_count    integer NOT NULL,
    last_failed_at  timestamptz NOT NULL,
    last_error_code text,
    PRIMARY KEY (id_customer, id_vehicle)
);

-- Every message.sent and message.failed, once. The primary key is the tracker's inbox: an event
-- id seen before inserts nothing, so it counts nothing. Never updated; reset and delete keep it.
CREATE TABLE message_log (
    event_id             text PRIMARY KEY,
    reminder_id          text NOT NULL,
    id_customer          uuid NOT NULL,
    id_vehicle           uuid NOT NULL,
    status               text NOT NULL CHECK (status IN ('sent', 'failed')),
    provider             text NOT NULL,
    provider_message_id  text,
    error_code           text,
    error                text,
    attempts             integer NOT NULL,
    at                   timestamptz NOT NULL,
    recorded_at          timestamptz NOT NULL DEFAULT now(),
    -- One outcome per reminder, whatever id an upstream publisher gave its event.
    UNIQUE (reminder_id, status)
);
CREATE INDEX message_log_at_idx ON message_log (at DESC, event_id);
CREATE INDEX message_log_pair_idx ON message_log (id_customer, id_vehicle, at DESC);
CREATE INDEX message_log_vehicle_idx ON message_log (id_vehicle, at DESC);
CREATE INDEX message_log_status_at_idx ON message_log (status, at DESC, event_id);
