-- limits-core: the statement deciding a batch of algorithms.FixedWindow hits, in one round trip
-- and one transaction, when every request is a hit on a key of its own at one time (the common
-- batch: concurrent requests of different clients). Parameters: $1 the keys (distinct), $2 their
-- costs, $3 now (µs, NULL: the server's clock), $4 limit, $5 period. Returns what the batch
-- function returns: four values per request, in request order.
--
-- The admitted path is the batch function's set-based upsert, as a plain statement: no PL/pgSQL
-- call. It locks the rows in ascending key order ("C" collation), as every batch does, so
-- batches never deadlock. A request it did not admit (a cost above the limit, or a hit its
-- WHERE denies) is decided by the function without consuming: after a denial the upsert still
-- holds the row's lock, so the function's read (a new snapshot: it is VOLATILE) sees exactly
-- the state that denied the hit, and it runs only once the upsert is complete (its result
-- decides whether the function runs at all). `clock` is read once, so the whole batch decides
-- at one instant.
WITH clock AS (
    SELECT coalesce($3::bigint, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint) AS now
), r AS (
    SELECT u.k, u.c, u.i FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS u(k, c, i)
), up AS (
    INSERT INTO @table@ AS s (key, n, t, expires_at)
    SELECT r.k, r.c, clock.now, clock.now + $5::bigint FROM r, clock
    WHERE r.c <= $4::bigint
    ORDER BY r.k COLLATE "C"
    ON CONFLICT (key) DO UPDATE SET
        n = CASE WHEN excluded.t - s.t >= $5::bigint THEN 0 ELSE s.n END + excluded.n,
        t = CASE WHEN excluded.t - s.t >= $5::bigint THEN excluded.t ELSE s.t END,
        expires_at = CASE WHEN excluded.t - s.t >= $5::bigint THEN excluded.expires_at
                          ELSE s.expires_at END
    WHERE CASE WHEN excluded.t - s.t >= $5::bigint THEN 0 ELSE s.n END + excluded.n
          <= $4::bigint
    RETURNING s.key, s.n, s.t
)
SELECT coalesce(array_agg(x.v ORDER BY r.i, x.o), '{}'::bigint[])
FROM r
LEFT JOIN up ON up.key = r.k
CROSS JOIN LATERAL unnest(
    CASE WHEN up.key IS NOT NULL
         THEN ARRAY[1, $4::bigint - up.n,
                    up.t + $5::bigint - greatest((SELECT now FROM clock), up.t), 0]
         ELSE @fixed_window@(r.k, r.c, (SELECT now FROM clock), false, $4::bigint, $5::bigint)
    END
) WITH ORDINALITY AS x(v, o)
