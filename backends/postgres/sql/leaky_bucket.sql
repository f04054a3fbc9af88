-- limits-core: one atomic step of algorithms.LeakyBucket, decision by decision.
--
-- The level is an integer in scaled units: one unit of cost is p_unit units, the bucket drains
-- p_drain units per microsecond down to zero, holds at most p_full = capacity * p_unit units,
-- and is empty p_empty µs after being full. Every quantity stays below 2**54, so bigint
-- arithmetic is exact; ceil(a / b) for a >= 0, b > 0 is (a + b - 1) / b. Per key, time never
-- runs backwards (now < last counts as last).
-- Row: n = level (scaled) at time t.
--
-- The level at now is greatest(0, n - least(max(now - t, 0), empty) * drain): clamping the
-- elapsed time at p_empty gives the model's "empty after empty_us" without overflow.
--
-- Same shape as token_bucket.sql: the admitted path is one upsert whose WHERE admits the hit
-- (its row lock serializes the key; concurrent first inserts are resolved by ON CONFLICT).
-- When the WHERE rejects the hit, ON CONFLICT has still locked the row, so the SELECT that
-- follows (a new snapshot at READ COMMITTED) reads exactly the state that denied it. A peek,
-- or a cost above the capacity, only reads, without locking. A denied hit writes nothing.
--
-- expires_at (garbage collection only) is the time the bucket is empty again, rounded up to
-- the end of its block of 2**20 µs, so most updates of a busy key can stay HOT.
--
-- Returns ARRAY[allowed (1 or 0), remaining, reset_after_us, retry_after_us (-1: never)].
CREATE OR REPLACE FUNCTION @leaky_bucket@(
    p_key text, p_cost bigint, p_now bigint, p_consume boolean,
    p_capacity bigint, p_unit bigint, p_drain bigint, p_full bigint, p_empty bigint
) RETURNS bigint[] LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_now bigint := coalesce(p_now, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint);
    -- A cost above the capacity is denied whatever the state; capping it keeps the product
    -- exact.
    v_need bigint := least(p_cost, p_capacity + 1) * p_unit;
    v_level bigint;
    v_last bigint;
BEGIN
    IF p_consume AND p_cost <= p_capacity THEN
        INSERT INTO @table@ AS s (key, n, t, expires_at)
        VALUES (p_key, v_need, v_now, (v_now + (v_need + p_drain - 1) / p_drain) | 1048575)
        ON CONFLICT (key) DO UPDATE SET
            n = greatest(0, s.n - least(greatest(v_now - s.t, 0), p_empty) * p_drain) + v_need,
            t = greatest(v_now, s.t),
            expires_at = (greatest(v_now, s.t)
                + (greatest(0, s.n - least(greatest(v_now - s.t, 0), p_empty) * p_drain)
                   + v_need + p_drain - 1) / p_drain) | 1048575
        WHERE greatest(0, s.n - least(greatest(v_now - s.t, 0), p_empty) * p_drain) + v_need
              <= p_full
        RETURNING s.n INTO v_level;
        IF FOUND THEN
            RETURN ARRAY[1, (p_full - v_level) / p_unit, (v_level + p_drain - 1) / p_drain, 0];
        END IF;
    END IF;

    SELECT s.n, s.t INTO v_level, v_last FROM @table@ AS s WHERE s.key = p_key;
    IF FOUND THEN
        IF v_now < v_last THEN
            v_now := v_last;
        END IF;
        v_level := greatest(0, v_level - least(v_now - v_last, p_empty) * p_drain);
    ELSE
        v_level := 0;
    END IF;
    IF p_cost > p_capacity THEN
        RETURN ARRAY[0, (p_full - v_level) / p_unit, (v_level + p_drain - 1) / p_drain, -1];
    ELSIF v_level + v_need > p_full THEN
        RETURN ARRAY[0, (p_full - v_level) / p_unit, (v_level + p_drain - 1) / p_drain,
                     (v_level + v_need - p_full + p_drain - 1) / p_drain];
    ELSIF p_consume THEN
        -- The upsert admits every hit that fits: never report one admitted without counting it.
        RAISE EXCEPTION 'limits-core: leaky_bucket found an admissible hit it did not count';
    END IF;
    RETURN ARRAY[1, (p_full - v_level - v_need) / p_unit,
                 (v_level + v_need + p_drain - 1) / p_drain, 0];
END
$$;

-- refund: drain p_amount at once, down to empty, under the row lock; an empty bucket is
-- deleted, and a key with no row stays without. Returns what a peek of cost 1 returns right
-- after, in the same transaction.
CREATE OR REPLACE FUNCTION @leaky_bucket_refund@(
    p_key text, p_amount bigint, p_now bigint,
    p_capacity bigint, p_unit bigint, p_drain bigint, p_full bigint, p_empty bigint
) RETURNS bigint[] LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_now bigint := coalesce(p_now, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint);
    v_at bigint;
    v_level bigint;
    v_last bigint;
BEGIN
    SELECT s.n, s.t INTO v_level, v_last FROM @table@ AS s WHERE s.key = p_key FOR UPDATE;
    IF FOUND THEN
        v_at := greatest(v_now, v_last);
        v_level := v_level - least(v_at - v_last, p_empty) * p_drain
                   - least(p_amount, p_capacity) * p_unit;
        IF v_level <= 0 THEN
            DELETE FROM @table@ WHERE key = p_key;
        ELSE
            UPDATE @table@ SET n = v_level, t = v_at,
                expires_at = (v_at + (v_level + p_drain - 1) / p_drain) | 1048575
            WHERE key = p_key;
        END IF;
    END IF;
    RETURN @leaky_bucket@(p_key, 1, v_now, false, p_capacity, p_unit, p_drain, p_full, p_empty);
END
$$;
