-- Management reporting reads which phones are opted out (the never-reminded list gives that as
-- the reason). The consent table belongs to the consent feature; it is created here too, with
-- the same columns and only if missing, so this reporting works whichever migration runs first.
CREATE TABLE IF NOT EXISTS consent (
    phone       text PRIMARY KEY,
    opted_out   boolean NOT NULL,
    source      text NOT NULL,
    at          timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
