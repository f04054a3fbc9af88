-- limits-core: one atomic step of algorithms.FixedWindow.step, decision by decision.
--
-- A window opens at the first admitted hit on a key with no live window and covers
-- [start, start + period). Per key, time never runs backwards (now < start counts as start).
--
-- The admitted path is one statement: an upsert whose WHERE admits the hit. When the WHERE
-- rejects it, ON CONFLICT has still locked the row, so the SELECT that follows (a new snapshot
-- at READ COMMITTED) reads exactly the state that denied it. A peek reads without locking.
CREATE OR REPLACE FUNCTION @fixed_window@(
    p_key text, p_cost bigint, p_now bigint, p_consume boolean,
    p_limit bigint, p_period bigint,
    OUT allowed boolean, OUT remaining bigint, OUT reset_us bigint, OUT retry_us bigint
) LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_now bigint := coalesce(p_now, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint);
    v_start bigint;
    v_count bigint;
    v_left bigint;
BEGIN
    IF p_consume AND p_cost <= p_limit THEN
        INSERT INTO @table@ AS s (key, n, t, expires_at)
        VALUES (p_key, p_cost, v_now, v_now + p_period)
        ON CONFLICT (key) DO UPDATE SET
            n = CASE WHEN v_now - s.t >= p_period THEN 0 ELSE s.n END + p_cost,
            t = CASE WHEN v_now - s.t >= p_period THEN v_now ELSE s.t END,
            expires_at = CASE WHEN v_now - s.t >= p_period THEN v_now + p_period
                              ELSE s.expires_at END
        WHERE CASE WHEN v_now - s.t >= p_period THEN 0 ELSE s.n END + p_cost <= p_limit
        RETURNING s.n, s.t INTO v_count, v_start;
        IF FOUND THEN
            allowed := true;
            remaining := p_limit - v_count;
            reset_us := v_start + p_period - greatest(v_now, v_start);
            retry_us := 0;
            RETURN;
        END IF;
    END IF;

    SELECT s.n, s.t INTO v_count, v_start FROM @table@ AS s WHERE s.key = p_key;
    IF FOUND THEN
        IF v_now < v_start THEN
            v_now := v_start;
        ELSIF v_now - v_start >= p_period THEN
            v_start := v_now;
            v_count := 0;
        END IF;
    ELSE
        v_start := v_now;
        v_count := 0;
    END IF;
    v_left := v_start + p_period - v_now;
    remaining := p_limit - v_count;
    reset_us := CASE WHEN v_count > 0 THEN v_left ELSE 0 END;
    IF p_cost > p_limit THEN
        allowed := false;
        retry_us := -1;
    ELSIF v_count + p_cost > p_limit THEN
        allowed := false;
        retry_us := v_left;
    ELSIF p_consume THEN
        -- Unreachable: the upsert admits every request that fits. Fail loudly, never silently
        -- admit without counting.
        RAISE EXCEPTION 'limits-core: fixed_window found an admissible request it did not count';
    ELSE
        allowed := true;
        remaining := p_limit - v_count - p_cost;
        reset_us := v_left;
        retry_us := 0;
    END IF;
END
$$;
