-- limits-core: the statement deciding one request of algorithms.FixedWindow, in one round trip.
-- Parameters as for @fixed_window@: $1 key, $2 cost, $3 now (µs, NULL: the server's clock),
-- $4 consume, $5 limit, $6 period. Returns the same ARRAY as that function.
--
-- The admitted path is the function's upsert, run as a plain statement: no PL/pgSQL call, the
-- cost of a bare upsert. When the upsert admits nothing (a peek, a cost above the limit, or a
-- hit its WHERE denies), the function decides without consuming. After a denial the upsert
-- still holds the row's lock, so the function's read (a new snapshot: it is VOLATILE) sees
-- exactly the state that denied the hit. `clock` is read once (a CTE referenced several times
-- is computed once), so the whole statement decides at one instant.
WITH clock AS (
    SELECT coalesce($3::bigint, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint) AS now
), up AS (
    INSERT INTO @table@ AS s (key, n, t, expires_at)
    SELECT $1::text, $2::bigint, clock.now, clock.now + $6::bigint FROM clock
    WHERE $4::boolean AND $2::bigint <= $5::bigint
    ON CONFLICT (key) DO UPDATE SET
        n = CASE WHEN excluded.t - s.t >= $6::bigint THEN 0 ELSE s.n END + excluded.n,
        t = CASE WHEN excluded.t - s.t >= $6::bigint THEN excluded.t ELSE s.t END,
        expires_at = CASE WHEN excluded.t - s.t >= $6::bigint THEN excluded.expires_at
                          ELSE s.expires_at END
    WHERE CASE WHEN excluded.t - s.t >= $6::bigint THEN 0 ELSE s.n END + excluded.n
          <= $5::bigint
    RETURNING ARRAY[1, $5::bigint - s.n,
                    s.t + $6::bigint - greatest((SELECT now FROM clock), s.t), 0] AS reply
)
SELECT coalesce(
    (SELECT reply FROM up),
    @fixed_window@($1::text, $2::bigint, (SELECT now FROM clock), false, $5::bigint, $6::bigint))
