-- The producer reads due vehicles in pages ordered by (due date, vehicle id); this index gives
-- each page as one range in that order (the date alone would sort the rest of the window for
-- every page). It replaces the date-only index, which it covers.
CREATE INDEX IF NOT EXISTS vehicles_due_scan_idx
    ON vehicles (next_maintenance_date, id) WHERE next_maintenance_date IS NOT NULL;
DROP INDEX IF EXISTS vehicles_next_maintenance_date_idx;
