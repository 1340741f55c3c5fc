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
--   src/db/reports.rs (`push_recent_page`) reads a page that way and falls back to sorting the report
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

-- The maxima have triggers of their own beside the totals' (which stay as they were): counting
-- raises them on the backend's shard; a reset, recognised by the 0 it leaves (a value no count
-- leaves; nothing lowers last_message_date), and a delete of a row that held one recount them.
-- (Joining old and new rows to find what went down would be general, but planned without
-- statistics it cost the tracker half its throughput.)
CREATE FUNCTION whatsapp_report_raise_maxima() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE report_totals t SET
        max_frequency = greatest(t.max_frequency, n.max_frequency),
        last_message_date = greatest(t.last_message_date, n.last_message_date)
    FROM (SELECT coalesce(max(frequency), 0) AS max_frequency,
                 max(last_message_date) AS last_message_date
          FROM new_rows) n
    WHERE t.shard = reminder_totals_shard() AND n.last_message_date IS NOT NULL;
    IF EXISTS (SELECT 1 FROM new_rows WHERE frequency = 0) THEN
        PERFORM reminder_recount_report_maxima();
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION whatsapp_report_maxima_after_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT max(frequency) FROM old_rows) >= (SELECT max(max_frequency) FROM report_totals)
       OR (SELECT max(last_message_date) FROM old_rows)
          >= (SELECT max(last_message_date) FROM report_totals) THEN
        PERFORM reminder_recount_report_maxima();
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER whatsapp_report_maxima_insert AFTER INSERT ON whatsapp_report
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION whatsapp_report_raise_maxima();
CREATE TRIGGER whatsapp_report_maxima_update AFTER UPDATE ON whatsapp_report
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION whatsapp_report_raise_maxima();
CREATE TRIGGER whatsapp_report_maxima_delete AFTER DELETE ON whatsapp_report
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION whatsapp_report_maxima_after_delete();
