-- The workshop's master data. Upstream systems fill these; the producer reads them.
CREATE TABLE IF NOT EXISTS customers (
    id          uuid PRIMARY KEY,
    name        text NOT NULL,
    phone       text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS vehicles (
    id                     uuid PRIMARY KEY,
    id_customer            uuid NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    plate_number           text NOT NULL,
    brand                  text,
    model                  text,
    next_maintenance_date  date,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now()
);

-- The producer's daily scan is a range scan on this index.
CREATE INDEX IF NOT EXISTS vehicles_next_maintenance_date_idx
    ON vehicles (next_maintenance_date) WHERE next_maintenance_date IS NOT NULL;
CREATE INDEX IF NOT EXISTS vehicles_id_customer_idx ON vehicles (id_customer);
