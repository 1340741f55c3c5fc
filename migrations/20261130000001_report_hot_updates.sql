-- Counting a message updates its report row in place (a HOT update, no index touched).
--
-- The report's two sort indexes, (last_message_date DESC, id) and (frequency DESC, id), held the
-- two columns every counted message changes, so PostgreSQL could never update a report row on
-- its page: each count wrote a new row version and a new entry in all five indexes. That was
-- most of the tracker's database time (its statement alone: 38,700 -> 56,900 events/s without
-- them, reminder-bench tracker on the development machine). What they served moves elsewhere:
--
-- * Most recently messaged first (the lists' default order) is read from the message history's
--   time index, which every message writes anyway: a report's last_message_date is always the
--   time of one of its pair's sent messages (the tracker writes both in one statement, and
--   nothing deletes history), so walking the newest sent messages finds the newest reports.
--   src/db/reports.rs (`recent_page`) reads a page that way and falls back to sorting the report
--   when the walk would be long (deep pages).
-- * The highest frequency and the latest message of /statistics are kept per shard of
--   report_totals by the triggers below, as the other totals are.
-- * sort=frequency sorts the report (about a tenth of a second per million reports).
DROP INDEX IF EXISTS whatsapp_report_recent_idx;
DROP INDEX IF EXISTS whatsapp_report_frequency_idx;

-- Room on every page for the new version of a row, so the in-place update finds space.
ALTER TABLE whatsapp_report SET (fillfactor = 80);

ALTER TABLE report_totals
    ADD COLUMN max_frequency integer NOT NULL DEFAULT 0,
    ADD COLUMN last_message_date timestamptz;

-- Recomputes both maxima from the report (a scan), for the writes that can lower them: a reset
-- of frequencies and a delete. Those writers lock whatsapp_report against other writers first
-- (SHARE ROW EXCLUSIVE, src/db/reports.rs), so no tracker batch commits a higher value between
-- this scan and its write. Other shards are zeroed: readers take the maximum over all shards.
CREATE FUNCTION reminder_recount_report_maxima() RETURNS void LANGUAGE sql AS $$
    UPDATE report_totals t SET
        max_frequency = CASE WHEN t.shard = 0 THEN m.max_frequency ELSE 0 END,
        last_message_date = CASE WHEN t.shard = 0 THEN m.last_message_date END
    FROM (SELECT coalesce(max(frequency), 0) AS max_frequency,
                 max(last_message_date) AS last_message_date
          FROM whatsapp_report) m
$$;

SELECT reminder_recount_report_maxima();

CREATE OR REPLACE FUNCTION whatsapp_report_after_insert() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    new_customers bigint;
    new_vehicles bigint;
BEGIN
    WITH c AS (
        INSERT INTO report_customers AS rc (id_customer, reports)
        SELECT id_customer, count(*) FROM new_rows GROUP BY id_customer ORDER BY id_customer
        ON CONFLICT (id_customer) DO UPDATE SET reports = rc.reports + excluded.reports
        RETURNING (xmax = 0) AS inserted
    )
    SELECT count(*) FILTER (WHERE inserted) INTO new_customers FROM c;
    WITH v AS (
        INSERT INTO report_vehicles AS rv (id_vehicle, reports)
        SELECT id_vehicle, count(*) FROM new_rows GROUP BY id_vehicle ORDER BY id_vehicle
        ON CONFLICT (id_vehicle) DO UPDATE SET reports = rv.reports + excluded.reports
        RETURNING (xmax = 0) AS inserted
    )
    SELECT count(*) FILTER (WHERE inserted) INTO new_vehicles FROM v;
    UPDATE report_totals t SET
        total_reports = t.total_reports + n.reports,
        total_messages = t.total_messages + n.messages,
        unique_customers = t.unique_customers + new_customers,
        unique_vehicles = t.unique_vehicles + new_vehicles,
        max_frequency = greatest(t.max_frequency, n.max_frequency),
        last_message_date = greatest(t.last_message_date, n.last_message_date)
    FROM (SELECT count(*) AS reports, coalesce(sum(frequency), 0) AS messages,
                 coalesce(max(frequency), 0) AS max_frequency,
                 max(last_message_date) AS last_message_date
          FROM new_rows) n
    WHERE t.shard = reminder_totals_shard() AND n.reports > 0;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION whatsapp_report_after_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE report_totals t SET
        total_messages = t.total_messages + d.delta,
        max_frequency = greatest(t.max_frequency, d.max_frequency),
        last_message_date = greatest(t.last_message_date, d.last_message_date)
    FROM (SELECT (SELECT coalesce(sum(frequency), 0) FROM new_rows)
               - (SELECT coalesce(sum(frequency), 0) FROM old_rows) AS delta,
                 (SELECT coalesce(max(frequency), 0) FROM new_rows) AS max_frequency,
                 (SELECT max(last_message_date) FROM new_rows) AS last_message_date) d
    WHERE t.shard = reminder_totals_shard() AND d.last_message_date IS NOT NULL;
    -- Counting only ever raises both maxima. What lowers a frequency is a reset, which sets it
    -- to 0, a value no count leaves (nothing lowers last_message_date), so a 0 among the new
    -- rows is what calls for a recount. (Joining old and new rows to compare them would be
    -- general, but planned without statistics it cost the tracker half its throughput.)
    IF EXISTS (SELECT 1 FROM new_rows WHERE frequency = 0) THEN
        PERFORM reminder_recount_report_maxima();
    END IF;
    RETURN NULL;
END $$;

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
    -- A deleted row that held a maximum takes it along.
    IF (SELECT max(frequency) FROM old_rows) >= (SELECT max(max_frequency) FROM report_totals)
       OR (SELECT max(last_message_date) FROM old_rows)
          >= (SELECT max(last_message_date) FROM report_totals) THEN
        PERFORM reminder_recount_report_maxima();
    END IF;
    RETURN NULL;
END $$;
