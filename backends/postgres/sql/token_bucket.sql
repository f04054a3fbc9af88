-- limits-core: one atomic step of algorithms.TokenBucket, decision by decision.
--
-- Tokens are integers in scaled units: one token is p_unit units, the bucket gains p_refill
-- units per microsecond up to p_capacity, and is full p_fill µs after being empty. Every
-- quantity stays below 2**54, so bigint arithmetic is exact; ceil(a / b) for a >= 0, b > 0 is
-- (a + b - 1) / b. Per key, time never runs backwards (now < last counts as last).
-- Row: n = tokens (scaled) at time t.
--
-- The level at now is least(capacity, n + least(max(now - t, 0), fill) * refill): clamping the
-- elapsed time at p_fill gives the model's "full after fill_us" without overflow.
--
-- The admitted path is one upsert whose WHERE admits the hit (its row lock serializes the
-- key; concurrent first inserts are resolved by ON CONFLICT). When the WHERE rejects the hit,
-- ON CONFLICT has still locked the row, so the SELECT that follows (a new snapshot at READ
-- COMMITTED) reads exactly the state that denied it. A peek, or a cost above the burst, only
-- reads, without locking. A denied hit writes nothing.
--
-- expires_at (garbage collection only) is the time the bucket is full again, rounded up to
-- the end of its block of 2**20 µs (about a second): most updates of a busy key then leave the
-- indexed column as it was, and PostgreSQL can update the row in place (HOT).
--
-- Returns ARRAY[allowed (1 or 0), remaining, reset_after_us, retry_after_us (-1: never)].
-- Replaced in place, so sessions using it carry on; dropped first only if an earlier version
-- returned another type (which CREATE OR REPLACE cannot change).
DO $$
BEGIN
    IF (SELECT prorettype FROM pg_proc
        WHERE oid = to_regprocedure('@token_bucket@(text, bigint, bigint, boolean, bigint, bigint, bigint, bigint, bigint)')) <> 'bigint[]'::regtype THEN
        DROP FUNCTION @token_bucket@(text, bigint, bigint, boolean, bigint, bigint, bigint, bigint, bigint);
    END IF;
END
$$;
CREATE OR REPLACE FUNCTION @token_bucket@(
    p_key text, p_cost bigint, p_now bigint, p_consume boolean,
    p_burst bigint, p_unit bigint, p_refill bigint, p_capacity bigint, p_fill bigint
) RETURNS bigint[] LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_now bigint := coalesce(p_now, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint);
    -- A cost above the burst is denied whatever the state; capping it keeps the product exact.
    v_need bigint := least(p_cost, p_burst + 1) * p_unit;
    v_tokens bigint;
    v_last bigint;
BEGIN
    IF p_consume AND p_cost <= p_burst THEN
        INSERT INTO @table@ AS s (key, n, t, expires_at)
        VALUES (p_key, p_capacity - v_need, v_now,
                (v_now + (v_need + p_refill - 1) / p_refill) | 1048575)
        ON CONFLICT (key) DO UPDATE SET
            n = least(p_capacity, s.n + least(greatest(v_now - s.t, 0), p_fill) * p_refill)
                - v_need,
            t = greatest(v_now, s.t),
            expires_at = (greatest(v_now, s.t)
                + (p_capacity - least(p_capacity,
                       s.n + least(greatest(v_now - s.t, 0), p_fill) * p_refill)
                   + v_need + p_refill - 1) / p_refill) | 1048575
        WHERE least(p_capacity, s.n + least(greatest(v_now - s.t, 0), p_fill) * p_refill)
              >= v_need
        RETURNING s.n INTO v_tokens;
        IF FOUND THEN
            RETURN ARRAY[1, v_tokens / p_unit, (p_capacity - v_tokens + p_refill - 1) / p_refill, 0];
        END IF;
    END IF;

    SELECT s.n, s.t INTO v_tokens, v_last FROM @table@ AS s WHERE s.key = p_key;
    IF FOUND THEN
        IF v_now < v_last THEN
            v_now := v_last;
        END IF;
        v_tokens := least(p_capacity, v_tokens + least(v_now - v_last, p_fill) * p_refill);
    ELSE
        v_tokens := p_capacity;
    END IF;
    IF p_cost > p_burst THEN
        RETURN ARRAY[0, v_tokens / p_unit, (p_capacity - v_tokens + p_refill - 1) / p_refill, -1];
    ELSIF v_tokens < v_need THEN
        RETURN ARRAY[0, v_tokens / p_unit, (p_capacity - v_tokens + p_refill - 1) / p_refill,
                     (v_need - v_tokens + p_refill - 1) / p_refill];
    ELSIF p_consume THEN
        -- The upsert admits every hit that fits: never report one admitted without counting it.
        RAISE EXCEPTION 'limits-core: token_bucket found an admissible hit it did not count';
    END IF;
    RETURN ARRAY[1, (v_tokens - v_need) / p_unit,
                 (p_capacity - v_tokens + v_need + p_refill - 1) / p_refill, 0];
END
$$;

-- refund: put p_amount tokens back, up to the capacity, under the row lock; a bucket full
-- again is deleted (no row is the same full bucket), and a key with no row stays without.
-- Returns what a peek of cost 1 returns right after, in the same transaction.
CREATE OR REPLACE FUNCTION @token_bucket_refund@(
    p_key text, p_amount bigint, p_now bigint,
    p_burst bigint, p_unit bigint, p_refill bigint, p_capacity bigint, p_fill bigint
) RETURNS bigint[] LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_now bigint := coalesce(p_now, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint);
    v_at bigint;
    v_tokens bigint;
    v_last bigint;
BEGIN
    SELECT s.n, s.t INTO v_tokens, v_last FROM @table@ AS s WHERE s.key = p_key FOR UPDATE;
    IF FOUND THEN
        v_at := greatest(v_now, v_last);
        v_tokens := v_tokens + least(v_at - v_last, p_fill) * p_refill
                    + least(p_amount, p_burst) * p_unit;
        IF v_tokens >= p_capacity THEN
            DELETE FROM @table@ WHERE key = p_key;
        ELSE
            UPDATE @table@ SET n = v_tokens, t = v_at,
                expires_at = (v_at + (p_capacity - v_tokens + p_refill - 1) / p_refill) | 1048575
            WHERE key = p_key;
        END IF;
    END IF;
    RETURN @token_bucket@(p_key, 1, v_now, false, p_burst, p_unit, p_refill, p_capacity, p_fill);
END
$$;
