-- limits-core: the state table. One row per (prefix, algorithm, parameters, key).
--
-- Columns, by algorithm:
--   fixed_window  n = cost admitted in the window, t = window start (µs)
--   token_bucket  n = tokens in scaled units,      t = time of that level (µs)
--   sliding_log   n = units in the log,            t = newest logged time (µs),
--                 log_t/log_n = the log, run-length encoded: log_n[i] units admitted at
--                 log_t[i], oldest first (at most `limit` entries, since each holds >= 1 unit)
--   concurrency   n = cost in flight,              t = time of the last write (µs),
--                 log_t/log_n/lease_ids = each live lease's expiry (µs), cost and id
--   expires_at    after this time (µs) the row no longer affects any decision; purge
--                 deletes it. Decisions never read it: they work from n, t and the log.
--
-- The key is compared in the "C" collation (bytewise, the fastest). fillfactor leaves room on
-- each page so that an update can stay on the row's page (a HOT update, with no index write).
CREATE SCHEMA IF NOT EXISTS @schema@;

CREATE @unlogged@TABLE IF NOT EXISTS @table@ (
    key         text COLLATE "C" PRIMARY KEY,
    n           bigint NOT NULL,
    t           bigint NOT NULL,
    log_t       bigint[],
    log_n       bigint[],
    expires_at  bigint NOT NULL
) WITH (fillfactor = 80);

CREATE INDEX IF NOT EXISTS @index@ ON @table@ (expires_at);

-- Added after the first release: tables created before it gain the column in place (a
-- catalog-only change, since it has no default).
ALTER TABLE @table@ ADD COLUMN IF NOT EXISTS lease_ids bigint[];
