-- A provider call whose request went out but whose answer was lost leaves the reminder
-- 'unknown' (when whatsapp.unknown_outcome_wait_secs > 0): it is neither retried nor final
-- until next_attempt_at, when a delivery status naming it decides (sent) or its absence does
-- (retried).
ALTER TABLE reminder_dispatch DROP CONSTRAINT IF EXISTS reminder_dispatch_status_check;
ALTER TABLE reminder_dispatch ADD CONSTRAINT reminder_dispatch_status_check
    CHECK (status IN ('sending', 'retrying', 'unknown', 'sent', 'failed'));

-- The tracker's record of delivery statuses (its inbox by event id). The webhook's own
-- migration creates it; it is created here too, identically, so the sender's look-up works
-- whichever of the two runs first.
CREATE TABLE IF NOT EXISTS message_statuses (
    event_id            text PRIMARY KEY,
    provider            text,
    provider_message_id text NOT NULL,
    status              text,
    reminder_id         text NULL,
    recipient           text NULL,
    at                  timestamptz,
    error_code          text NULL,
    error               text NULL,
    billable            boolean NULL,
    pricing_category    text NULL,
    recorded_at         timestamptz DEFAULT now()
);
CREATE INDEX IF NOT EXISTS message_statuses_reminder_id_idx ON message_statuses (reminder_id);
CREATE INDEX IF NOT EXISTS message_statuses_provider_message_id_idx
    ON message_statuses (provider_message_id);
