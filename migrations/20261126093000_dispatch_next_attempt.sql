-- When a reminder that failed transiently may be tried again (back-off and the provider's
-- Retry-After). A duplicate or early copy of the reminder that arrives before then is parked
-- again instead of calling the provider ahead of the back-off.
ALTER TABLE reminder_dispatch ADD COLUMN next_attempt_at timestamptz;
