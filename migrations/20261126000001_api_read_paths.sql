-- Read paths of the HTTP API, and a report delete that no longer scans the aggregates.

-- Deleting reports used to look through all of report_customers and report_vehicles for counts
-- that had reached zero; only the customers and vehicles of the deleted rows can have. A
-- statement that deleted nothing now changes nothing.
CREATE OR REPLACE FUNCTION whatsapp_report_after_delete() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    gone_customers bigint;
    gone_vehicles bigint;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM old_rows) THEN
        RETURN NULL;
    END IF;
    UPDATE report_customers rc SET reports = rc.reports - o.n
    FROM (SELECT id_customer, count(*) AS n FROM old_rows GROUP BY id_customer) o
    WHERE rc.id_customer = o.id_customer;
    WITH d AS (
        DELETE FROM report_customers rc
        USING (SELECT DISTINCT id_customer FROM old_rows) o
        WHERE rc.id_customer = o.id_customer AND rc.reports <= 0
        RETURNING 1
    )
    SELECT count(*) INTO gone_customers FROM d;

    UPDATE report_vehicles rv SET reports = rv.reports - o.n
    FROM (SELECT id_vehicle, count(*) AS n FROM old_rows GROUP BY id_vehicle) o
    WHERE rv.id_vehicle = o.id_vehicle;
    WITH d AS (
        DELETE FROM report_vehicles rv
        USING (SELECT DISTINCT id_vehicle FROM old_rows) o
        WHERE rv.id_vehicle = o.id_vehicle AND rv.reports <= 0
        RETURNING 1
    )
    SELECT count(*) INTO gone_vehicles FROM d;

    UPDATE report_totals t SET
        total_reports = t.total_reports - o.reports,
        total_messages = t.total_messages - o.messages,
        unique_customers = t.unique_customers - gone_customers,
        unique_vehicles = t.unique_vehicles - gone_vehicles
    FROM (SELECT count(*) AS reports, coalesce(sum(frequency), 0) AS messages FROM old_rows) o
    WHERE t.shard = reminder_totals_shard();
    RETURN NULL;
END $$;

-- /over-reminded and the reminder_over_reminded_pairs gauge count each pair's messages sent
-- in the last N days. Carrying the pair in the status index lets that count read a range of
-- the index alone instead of the whole history (a sequential scan of message_log before); the
-- index still serves /messages?status=... newest first.
DROP INDEX IF EXISTS message_log_status_at_idx;
CREATE INDEX message_log_status_at_idx ON message_log (status, at DESC, event_id)
    INCLUDE (id_customer, id_vehicle);
