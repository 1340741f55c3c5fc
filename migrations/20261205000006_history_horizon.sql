-- Where the message history begins after a prune: the quarter-hour totals keep counting pruned
-- days (for /daily and /statistics), so the message list's total must leave those out.
CREATE TABLE IF NOT EXISTS history_horizon (
    id             boolean PRIMARY KEY DEFAULT true CHECK (id),
    pruned_before  timestamptz NOT NULL
);
