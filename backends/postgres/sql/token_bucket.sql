-- limits-core: one atomic step of algorithms.TokenBucket.step, decision by decision.
--
-- Tokens are integers in scaled units: one token is p_unit units, the bucket gains p_refill
-- units per microsecond up to p_capacity, and is full p_fill µs after being empty. Every
-- quantity stays below 2**54, so bigint arithmetic is exact; ceil(a / b) for a >= 0, b > 0 is
-- (a + b - 1) / b. Per key, time never runs backwards (now < last counts as last).
--
-- The level at v_now is least(capacity, n + least(max(v_now - t, 0), fill) * refill): clamping
-- the elapsed time at p_fill gives the model's "full after fill_us" without overflow.
--
-- The admitted path is one upsert whose WHERE admits the request; a rejected upsert has locked
-- the row, and the SELECT that follows reads the state that denied it. expires_at (garbage
-- collection only) is the time the bucket is full again, rounded up to the end of its block of
-- 2**20 µs (about a second): most updates of a busy key then leave the indexed column as it
-- was, and PostgreSQL can update the row in place (HOT) without touching the index.
CREATE OR REPLACE FUNCTION @token_bucket@(
    p_key text, p_cost bigint, p_now bigint, p_consume boolean,
    p_burst bigint, p_unit bigint, p_refill bigint, p_capacity bigint, p_fill bigint,
    OUT allowed boolean, OUT remaining bigint, OUT reset_us bigint, OUT retry_us bigint
) LANGUAGE plpgsql VOLATILE AS $$
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
            allowed := true;
            remaining := v_tokens / p_unit;
            reset_us := (p_capacity - v_tokens + p_refill - 1) / p_refill;
            retry_us := 0;
            RETURN;
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
    remaining := v_tokens / p_unit;
    reset_us := (p_capacity - v_tokens + p_refill - 1) / p_refill;
    IF p_cost > p_burst THEN
        allowed := false;
        retry_us := -1;
    ELSIF v_tokens < v_need THEN
        allowed := false;
        retry_us := (v_need - v_tokens + p_refill - 1) / p_refill;
    ELSIF p_consume THEN
        -- Unreachable: the upsert admits every request that fits. Fail loudly, never silently
        -- admit without counting.
        RAISE EXCEPTION 'limits-core: token_bucket found an admissible request it did not count';
    ELSE
        allowed := true;
        remaining := (v_tokens - v_need) / p_unit;
        reset_us := (p_capacity - v_tokens + v_need + p_refill - 1) / p_refill;
        retry_us := 0;
    END IF;
END
$$;
