-- Consent per phone number (E.164 digits): a phone is opted out from its latest opt-out until a
-- later opt-in. `at` is the change's own time; a change applies only when it is newer than the
-- one recorded, so a late, older change never undoes a newer one.
CREATE TABLE consent (
    phone       text PRIMARY KEY,
    opted_out   boolean NOT NULL,
    source      text NOT NULL CHECK (source IN ('keyword', 'user_preferences', 'provider_error', 'upstream', 'cli')),
    at          timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
-- The opt-out list, newest first.
CREATE INDEX consent_opted_out_idx ON consent (at DESC) WHERE opted_out;

-- Replies from customers (recorded by the tracker from `reply.received`). The producer reads
-- them to skip a reminder once the customer has answered; declared here too, with the same
-- definition, so either migration may create it first.
CREATE TABLE IF NOT EXISTS replies (
    event_id            text PRIMARY KEY,
    provider            text,
    provider_message_id text,
    phone               text,
    id_customer         uuid NULL,
    id_vehicle          uuid NULL,
    reminder_id         text NULL,
    type                text,
    text                text,
    button_payload      text,
    context_message_id  text,
    at                  timestamptz,
    recorded_at         timestamptz DEFAULT now()
);
CREATE INDEX IF NOT EXISTS replies_customer_at_idx ON replies (id_customer, at);

-- The opt-out list finds a phone's customer through the sender's records.
CREATE INDEX IF NOT EXISTS reminder_dispatch_phone_idx ON reminder_dispatch (phone, created_at);
