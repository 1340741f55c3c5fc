-- Aggregates kept current by statement-level triggers, in the same transaction as the write
-- that changes them, so /statistics reads a handful of rows instead of scanning the report.
-- Triggers (rather than the tracker's code) keep them right for every writer: the tracker,
-- `reminder report delete` and `reminder report reset-frequency`.

-- Totals are spread over 16 rows, picked by backend, so concurrent tracker transactions do
-- not queue on one row lock; readers sum them.
CREATE TABLE report_totals (
    shard             smallint PRIMARY KEY,
    total_reports     bigint NOT NULL DEFAULT 0,
    total_messages    bigint NOT NULL DEFAULT 0,
    unique_customers  bigint NOT NULL DEFAULT 0,
    unique_vehicles   bigint NOT NULL DEFAULT 0,
    total_failed      bigint NOT NULL DEFAULT 0
);
INSERT INTO report_totals (shard) SELECT generate_series(0, 15);

-- How many report rows each customer and vehicle has: a row appearing or disappearing here is
-- what moves unique_customers and unique_vehicles.
CREATE TABLE report_customers (id_customer uuid PRIMARY KEY, reports integer NOT NULL);
CREATE TABLE report_vehicles (id_vehicle uuid PRIMARY KEY, reports integer NOT NULL);

-- Messages per 15 minutes (UTC): period statistics and the daily chart sum these, in any time
-- zone with a whole-quarter-hour offset.
CREATE TABLE message_buckets (
    bucket        timestamptz PRIMARY KEY,
    sent          bigint NOT NULL DEFAULT 0,
    failed        bigint NOT NULL DEFAULT 0,
    last_sent_at  timestamptz
);

CREATE FUNCTION reminder_totals_shard() RETURNS smallint LANGUAGE sql AS
$$ SELECT (pg_backend_pid() % 16)::smallint $$;

CREATE FUNCTION whatsapp_report_after_insert() RETURNS trigger LANGUAGE plpgsql AS $$
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
        unique_vehicles = t.unique_vehicles + new_vehicles
    FROM (SELECT count(*) AS reports, coalesce(sum(frequency), 0) AS messages FROM new_rows) n
    WHERE t.shard = reminder_totals_shard() AND n.reports > 0;
    RETURN NULL;
END $$;

CREATE FUNCTION whatsapp_report_after_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE report_totals t SET total_messages = t.total_messages + d.delta
    FROM (SELECT (SELECT coalesce(sum(frequency), 0) FROM new_rows)
               - (SELECT coalesce(sum(frequency), 0) FROM old_rows) AS delta) d
    WHERE t.shard = reminder_totals_shard() AND d.delta <> 0;
    RETURN NULL;
END $$;

CREATE FUNCTION whatsapp_report_after_delete() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    gone_customers bigint;
    gone_vehicles bigint;
BEGIN
    UPDATE report_customers rc SET reports = rc.reports - o.n
    FROM (SELECT id_customer, count(*) AS n FROM old_rows GROUP BY id_customer) o
    WHERE rc.id_customer = o.id_customer;
    WITH d AS (DELETE FROM report_customers WHERE reports <= 0 RETURNING 1)
    SELECT count(*) INTO gone_customers FROM d;
    UPDATE report_vehicles rv SET reports = rv.reports - o.n
    FROM (SELECT id_vehicle, count(*) AS n FROM old_rows GROUP BY id_vehicle) o
    WHERE rv.id_vehicle = o.id_vehicle;
    WITH d AS (DELETE FROM report_vehicles WHERE reports <= 0 RETURNING 1)
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

CREATE TRIGGER whatsapp_report_totals_insert AFTER INSERT ON whatsapp_report
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION whatsapp_report_after_insert();
CREATE TRIGGER whatsapp_report_totals_update AFTER UPDATE ON whatsapp_report
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION whatsapp_report_after_update();
CREATE TRIGGER whatsapp_report_totals_delete AFTER DELETE ON whatsapp_report
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION whatsapp_report_after_delete();

CREATE FUNCTION message_log_after_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO message_buckets AS b (bucket, sent, failed, last_sent_at)
    SELECT date_bin('15 minutes', at, timestamptz '2000-01-01 00:00:00+00'),
           count(*) FILTER (WHERE status = 'sent'),
           count(*) FILTER (WHERE status = 'failed'),
           max(at) FILTER (WHERE status = 'sent')
    FROM new_rows GROUP BY 1 ORDER BY 1
    ON CONFLICT (bucket) DO UPDATE SET
        sent = b.sent + excluded.sent,
        failed = b.failed + excluded.failed,
        last_sent_at = greatest(b.last_sent_at, excluded.last_sent_at);
    UPDATE report_totals t SET total_failed = t.total_failed + f.n
    FROM (SELECT count(*) AS n FROM new_rows WHERE status = 'failed') f
    WHERE t.shard = reminder_totals_shard() AND f.n > 0;
    RETURN NULL;
END $$;

CREATE TRIGGER message_log_aggregates AFTER INSERT ON message_log
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION message_log_after_insert();
