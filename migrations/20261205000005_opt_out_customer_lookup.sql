-- The opt-out list finds the customer of a phone never sent to by the master-data phone that
-- normalises to it; without an index on that normalised form each listed phone scanned every
-- customer.
CREATE INDEX IF NOT EXISTS customers_phone_digits_idx
    ON customers ((regexp_replace(phone, '[^0-9]', '', 'g')));
