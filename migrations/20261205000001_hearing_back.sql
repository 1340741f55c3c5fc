-- Hearing back from the provider: delivery statuses and customers' replies, each recorded once
-- (the primary key is the tracker's inbox), a message's delivery state on its history row, and
-- the funnel counts (delivered, read, failed after send, replies) kept beside sent/failed in the
-- trigger-maintained aggregates so the statistics stay aggregate reads.

CREATE TABLE message_statuses (
    event_id            text COLLATE "C" PRIMARY KEY,
    provider            text NOT NULL,
    provider_message_id text NOT NULL,
    status              text NOT NULL CHECK (status IN ('sent', 'delivered', 'read', 'failed')),
    reminder_id         text COLLATE "C",
    recipient           text,
    at                  timestamptz NOT NULL,
    error_code          text,
    error               text,
    billable            boolean,
    pricing_category    text,
    recorded_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX message_statuses_reminder_idx ON message_statuses (reminder_id);
CREATE INDEX message_statuses_provider_message_idx ON message_statuses (provider_message_id);

CREATE TABLE replies (
    event_id            text COLLATE "C" PRIMARY KEY,
    provider            text NOT NULL,
    provider_message_id text NOT NULL,
    phone               text NOT NULL,
    id_customer         uuid,
    id_vehicle          uuid,
    reminder_id         text COLLATE "C",
    type                text NOT NULL,
    text                text,
    button_payload      text,
    context_message_id  text,
    at                  timestamptz NOT NULL,
    recorded_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX replies_at_idx ON replies (at DESC, event_id);
CREATE INDEX replies_customer_idx ON replies (id_customer, at DESC);
-- Replies that named a message not recorded yet, attached when its message.sent arrives.
CREATE INDEX replies_unattributed_context_idx ON replies (context_message_id)
    WHERE reminder_id IS NULL AND context_message_id IS NOT NULL;

-- The history row of a sent message carries how far it got. `delivery` stays null until the
-- provider reports something; readers show a sent message without a report as `accepted`.
ALTER TABLE message_log
    ADD COLUMN delivery text CHECK (delivery IN ('accepted', 'failed', 'delivered', 'read')),
    ADD COLUMN delivered_at timestamptz,
    ADD COLUMN read_at timestamptz,
    ADD COLUMN delivery_error_code text;
-- Statuses without a reminder id and replies naming the message they answer find it by the
-- provider's id.
CREATE INDEX message_log_provider_message_idx ON message_log (provider_message_id)
    WHERE provider_message_id IS NOT NULL;
-- A reply without context goes to the latest message sent to its phone: the pairs of a phone.
CREATE INDEX whatsapp_report_phone_idx ON whatsapp_report (customer_phone);

ALTER TABLE message_buckets
    ADD COLUMN delivered bigint NOT NULL DEFAULT 0,
    ADD COLUMN read bigint NOT NULL DEFAULT 0,
    ADD COLUMN failed_after_send bigint NOT NULL DEFAULT 0,
    ADD COLUMN replies bigint NOT NULL DEFAULT 0;
ALTER TABLE report_totals
    ADD COLUMN total_delivered bigint NOT NULL DEFAULT 0,
    ADD COLUMN total_read bigint NOT NULL DEFAULT 0,
    ADD COLUMN total_failed_after_send bigint NOT NULL DEFAULT 0,
    ADD COLUMN total_replies bigint NOT NULL DEFAULT 0;
ALTER TABLE whatsapp_report
    ADD COLUMN delivered integer NOT NULL DEFAULT 0,
    ADD COLUMN read integer NOT NULL DEFAULT 0,
    ADD COLUMN replies integer NOT NULL DEFAULT 0;

-- The order of delivery states: a message's state only rises.
CREATE FUNCTION reminder_delivery_rank(delivery text) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE delivery WHEN 'read' THEN 3 WHEN 'delivered' THEN 2 WHEN 'failed' THEN 1 ELSE 0 END
$$;

CREATE OR REPLACE FUNCTION message_log_after_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO message_buckets AS b (bucket, sent, failed, last_sent_at, delivered, read, failed_after_send)
    SELECT date_bin('15 minutes', at, timestamptz '2000-01-01 00:00:00+00'),
           count(*) FILTER (WHERE status = 'sent'),
           count(*) FILTER (WHERE status = 'failed'),
           max(at) FILTER (WHERE status = 'sent'),
           count(*) FILTER (WHERE reminder_delivery_rank(delivery) >= 2),
           count(*) FILTER (WHERE delivery = 'read'),
           count(*) FILTER (WHERE delivery = 'failed')
    FROM new_rows GROUP BY 1 ORDER BY 1
    ON CONFLICT (bucket) DO UPDATE SET
        sent = b.sent + excluded.sent,
        failed = b.failed + excluded.failed,
        last_sent_at = greatest(b.last_sent_at, excluded.last_sent_at),
        delivered = b.delivered + excluded.delivered,
        read = b.read + excluded.read,
        failed_after_send = b.failed_after_send + excluded.failed_after_send;
    UPDATE report_totals t SET
        total_failed = t.total_failed + f.failed,
        total_delivered = t.total_delivered + f.delivered,
        total_read = t.total_read + f.read,
        total_failed_after_send = t.total_failed_after_send + f.failed_after_send
    FROM (SELECT count(*) FILTER (WHERE status = 'failed') AS failed,
                 count(*) FILTER (WHERE reminder_delivery_rank(delivery) >= 2) AS delivered,
                 count(*) FILTER (WHERE delivery = 'read') AS read,
                 count(*) FILTER (WHERE delivery = 'failed') AS failed_after_send
          FROM new_rows) f
    WHERE t.shard = reminder_totals_shard()
      AND (f.failed > 0 OR f.delivered > 0 OR f.failed_after_send > 0);
    -- Sent messages that arrived with their statuses already heard: the pair's funnel counts.
    UPDATE whatsapp_report r SET delivered = r.delivered + n.delivered, read = r.read + n.read
    FROM (SELECT id_customer, id_vehicle,
                 count(*) FILTER (WHERE reminder_delivery_rank(delivery) >= 2) AS delivered,
                 count(*) FILTER (WHERE delivery = 'read') AS read
          FROM new_rows WHERE reminder_delivery_rank(delivery) >= 2
          GROUP BY 1, 2) n
    WHERE r.id_customer = n.id_customer AND r.id_vehicle = n.id_vehicle;
    -- Replies that named one of these messages before it was recorded now belong to it.
    WITH attached AS (
        UPDATE replies p SET id_customer = n.id_customer, id_vehicle = n.id_vehicle,
                             reminder_id = n.reminder_id
        FROM new_rows n
        WHERE n.status = 'sent' AND p.reminder_id IS NULL
          AND p.context_message_id IS NOT NULL AND p.context_message_id = n.provider_message_id
        RETURNING p.id_customer, p.id_vehicle
    )
    UPDATE whatsapp_report r SET replies = r.replies + a.n
    FROM (SELECT id_customer, id_vehicle, count(*) AS n FROM attached GROUP BY 1, 2) a
    WHERE r.id_customer = a.id_customer AND r.id_vehicle = a.id_vehicle;
    RETURN NULL;
END $$;

-- A delivery state that rose: move the funnel counts of the day the message was sent, the
-- totals and the pair's counts by the difference.
CREATE FUNCTION message_log_after_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WITH c AS (
        SELECT date_bin('15 minutes', n.at, timestamptz '2000-01-01 00:00:00+00') AS bucket,
               n.id_customer, n.id_vehicle,
               (reminder_delivery_rank(n.delivery) >= 2)::int
                 - (reminder_delivery_rank(o.delivery) >= 2)::int AS delivered,
               (n.delivery IS NOT DISTINCT FROM 'read')::int
                 - (o.delivery IS NOT DISTINCT FROM 'read')::int AS read,
               (n.delivery IS NOT DISTINCT FROM 'failed')::int
                 - (o.delivery IS NOT DISTINCT FROM 'failed')::int AS failed_after_send
        FROM new_rows n JOIN old_rows o USING (event_id)
        WHERE n.delivery IS DISTINCT FROM o.delivery
    ),
    buckets AS (
        UPDATE message_buckets b SET
            delivered = b.delivered + d.delivered, read = b.read + d.read,
            failed_after_send = b.failed_after_send + d.failed_after_send
        FROM (SELECT bucket, sum(delivered) AS delivered, sum(read) AS read,
                     sum(failed_after_send) AS failed_after_send
              FROM c GROUP BY 1) d
        WHERE b.bucket = d.bucket
        RETURNING 1
    ),
    totals AS (
        UPDATE report_totals t SET
            total_delivered = t.total_delivered + d.delivered,
            total_read = t.total_read + d.read,
            total_failed_after_send = t.total_failed_after_send + d.failed_after_send
        FROM (SELECT count(*) AS n, coalesce(sum(delivered), 0) AS delivered,
                     coalesce(sum(read), 0) AS read,
                     coalesce(sum(failed_after_send), 0) AS failed_after_send FROM c) d
        WHERE t.shard = reminder_totals_shard() AND d.n > 0
        RETURNING 1
    )
    UPDATE whatsapp_report r SET delivered = r.delivered + d.delivered, read = r.read + d.read
    FROM (SELECT id_customer, id_vehicle, sum(delivered) AS delivered, sum(read) AS read
          FROM c GROUP BY 1, 2) d
    WHERE r.id_customer = d.id_customer AND r.id_vehicle = d.id_vehicle
      AND (d.delivered <> 0 OR d.read <> 0);
    RETURN NULL;
END $$;

CREATE TRIGGER message_log_delivery AFTER UPDATE ON message_log
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION message_log_after_update();

-- Replies per quarter hour received, in the totals, and per attributed pair.
CREATE FUNCTION replies_after_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO message_buckets AS b (bucket, replies)
    SELECT date_bin('15 minutes', at, timestamptz '2000-01-01 00:00:00+00'), count(*)
    FROM new_rows GROUP BY 1 ORDER BY 1
    ON CONFLICT (bucket) DO UPDATE SET replies = b.replies + excluded.replies;
    UPDATE report_totals t SET total_replies = t.total_replies + n.n
    FROM (SELECT count(*) AS n FROM new_rows) n
    WHERE t.shard = reminder_totals_shard() AND n.n > 0;
    UPDATE whatsapp_report r SET replies = r.replies + n.n
    FROM (SELECT id_customer, id_vehicle, count(*) AS n FROM new_rows
          WHERE id_customer IS NOT NULL GROUP BY 1, 2) n
    WHERE r.id_customer = n.id_customer AND r.id_vehicle = n.id_vehicle;
    RETURN NULL;
END $$;

CREATE TRIGGER replies_aggregates AFTER INSERT ON replies
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION replies_after_insert();
