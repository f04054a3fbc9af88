-- limits-core: the statement deciding one request of algorithms.TokenBucket, in one round trip.
-- Parameters as for @token_bucket@: $1 key, $2 cost, $3 now (µs, NULL: the server's clock),
-- $4 consume, $5 burst, $6 unit, $7 refill, $8 capacity, $9 fill. Returns the same ARRAY as
-- that function, whose upsert this is (see fixed_window_statement.sql for the shape: the
-- function decides, without consuming, only when the upsert admitted nothing, and then reads
-- the row the upsert has locked). The upsert runs only for cost <= burst, so cost * unit stays
-- within the capacity.
WITH clock AS (
    SELECT coalesce($3::bigint, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint) AS now
), up AS (
    INSERT INTO @table@ AS s (key, n, t, expires_at)
    SELECT $1::text, $8::bigint - $2::bigint * $6::bigint, clock.now,
           (clock.now + ($2::bigint * $6::bigint + $7::bigint - 1) / $7::bigint) | 1048575
    FROM clock
    WHERE $4::boolean AND $2::bigint <= $5::bigint
    ON CONFLICT (key) DO UPDATE SET
        n = least($8::bigint, s.n + least(greatest(excluded.t - s.t, 0), $9::bigint) * $7::bigint)
            - $2::bigint * $6::bigint,
        t = greatest(excluded.t, s.t),
        expires_at = (greatest(excluded.t, s.t)
            + ($8::bigint - least($8::bigint,
                   s.n + least(greatest(excluded.t - s.t, 0), $9::bigint) * $7::bigint)
               + $2::bigint * $6::bigint + $7::bigint - 1) / $7::bigint) | 1048575
    WHERE least($8::bigint, s.n + least(greatest(excluded.t - s.t, 0), $9::bigint) * $7::bigint)
          >= $2::bigint * $6::bigint
    RETURNING ARRAY[1, s.n / $6::bigint, ($8::bigint - s.n + $7::bigint - 1) / $7::bigint, 0]
        AS reply
)
SELECT coalesce(
    (SELECT reply FROM up),
    @token_bucket@($1::text, $2::bigint, (SELECT now FROM clock), false,
        $5::bigint, $6::bigint, $7::bigint, $8::bigint, $9::bigint))
