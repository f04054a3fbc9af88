-- limits-core: one atomic step of algorithms.GCRA, decision by decision.
--
-- Time is counted in scaled units, p_scale per microsecond; the emission interval is
-- p_interval units and the tolerance p_tol = burst * p_interval units. Every quantity stays
-- below 2**54, so bigint arithmetic is exact; ceil(a / b) for a >= 0, b > 0 is
-- (a + b - 1) / b.
-- Row: t = the theoretical arrival time's whole microseconds, n = its remainder in scaled
-- units (0 <= n < p_scale).
--
-- ttl, the time until the key is fully rested, is, as in the model:
--   p_tol                         when t - now > p_tol / p_scale (a clock that went back),
--   least(p_tol, (t - now) * p_scale + n)   when 0 <= t - now <= p_tol / p_scale,
--   0                             when t < now.
-- CASE evaluates its branches in order, so the product is only formed when it stays small.
--
-- Same shape as token_bucket.sql: the admitted path is one upsert whose WHERE admits the hit
-- (its row lock serializes the key; concurrent first inserts are resolved by ON CONFLICT).
-- When the WHERE rejects the hit, ON CONFLICT has still locked the row, so the SELECT that
-- follows (a new snapshot at READ COMMITTED) reads exactly the state that denied it. A peek,
-- or a cost above the burst, only reads, without locking. A denied hit writes nothing.
-- An admitted hit stores now + ttl (ttl taken after the hit), so RETURNING gives back ttl as
-- (t - now) * p_scale + n.
--
-- expires_at (garbage collection only) is the time the key is fully rested, rounded up to the
-- end of its block of 2**20 µs, so most updates of a busy key can stay HOT.
--
-- Returns ARRAY[allowed (1 or 0), remaining, reset_after_us, retry_after_us (-1: never)].
CREATE OR REPLACE FUNCTION @gcra@(
    p_key text, p_cost bigint, p_now bigint, p_consume boolean,
    p_burst bigint, p_scale bigint, p_interval bigint, p_tol bigint
) RETURNS bigint[] LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_now bigint := coalesce(p_now, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint);
    -- A cost above the burst is denied whatever the state; capping it keeps the product exact.
    v_need bigint := least(p_cost, p_burst + 1) * p_interval;
    v_tat bigint;
    v_frac bigint;
    v_ttl bigint;
BEGIN
    IF p_consume AND p_cost <= p_burst THEN
        INSERT INTO @table@ AS s (key, n, t, expires_at)
        VALUES (p_key, v_need % p_scale, v_now + v_need / p_scale,
                (v_now + (v_need + p_scale - 1) / p_scale) | 1048575)
        ON CONFLICT (key) DO UPDATE SET
            n = (CASE WHEN s.t - v_now > p_tol / p_scale THEN p_tol
                      WHEN s.t >= v_now THEN least(p_tol, (s.t - v_now) * p_scale + s.n)
                      ELSE 0 END + v_need) % p_scale,
            t = v_now + (CASE WHEN s.t - v_now > p_tol / p_scale THEN p_tol
                              WHEN s.t >= v_now THEN least(p_tol, (s.t - v_now) * p_scale + s.n)
                              ELSE 0 END + v_need) / p_scale,
            expires_at = (v_now
                + (CASE WHEN s.t - v_now > p_tol / p_scale THEN p_tol
                        WHEN s.t >= v_now THEN least(p_tol, (s.t - v_now) * p_scale + s.n)
                        ELSE 0 END + v_need + p_scale - 1) / p_scale) | 1048575
        WHERE CASE WHEN s.t - v_now > p_tol / p_scale THEN p_tol
                   WHEN s.t >= v_now THEN least(p_tol, (s.t - v_now) * p_scale + s.n)
                   ELSE 0 END + v_need <= p_tol
        RETURNING s.t, s.n INTO v_tat, v_frac;
        IF FOUND THEN
            v_ttl := (v_tat - v_now) * p_scale + v_frac;
            RETURN ARRAY[1, (p_tol - v_ttl) / p_interval, (v_ttl + p_scale - 1) / p_scale, 0];
        END IF;
    END IF;

    SELECT s.t, s.n INTO v_tat, v_frac FROM @table@ AS s WHERE s.key = p_key;
    IF NOT FOUND OR v_tat < v_now THEN
        v_ttl := 0;
    ELSIF v_tat - v_now > p_tol / p_scale THEN
        v_ttl := p_tol;
    ELSE
        v_ttl := least(p_tol, (v_tat - v_now) * p_scale + v_frac);
    END IF;
    IF p_cost > p_burst THEN
        RETURN ARRAY[0, (p_tol - v_ttl) / p_interval, (v_ttl + p_scale - 1) / p_scale, -1];
    ELSIF v_ttl + v_need > p_tol THEN
        RETURN ARRAY[0, (p_tol - v_ttl) / p_interval, (v_ttl + p_scale - 1) / p_scale,
                     (v_ttl + v_need - p_tol + p_scale - 1) / p_scale];
    ELSIF p_consume THEN
        -- The upsert admits every hit that fits: never report one admitted without counting it.
        RAISE EXCEPTION 'limits-core: gcra found an admissible hit it did not count';
    END IF;
    RETURN ARRAY[1, (p_tol - v_ttl - v_need) / p_interval,
                 (v_ttl + v_need + p_scale - 1) / p_scale, 0];
END
$$;

-- refund: move the TAT back by p_amount intervals (at most the burst), exactly, borrowing
-- whole microseconds from t for the remainder n, under the row lock; a fully rested key is
-- deleted, and a key with no row stays without. Returns what a peek of cost 1 returns right
-- after, in the same transaction.
CREATE OR REPLACE FUNCTION @gcra_refund@(
    p_key text, p_amount bigint, p_now bigint,
    p_burst bigint, p_scale bigint, p_interval bigint, p_tol bigint
) RETURNS bigint[] LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_now bigint := coalesce(p_now, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint);
    v_tat bigint;
    v_frac bigint;
    v_borrow bigint;
BEGIN
    SELECT s.t, s.n INTO v_tat, v_frac FROM @table@ AS s WHERE s.key = p_key FOR UPDATE;
    IF FOUND THEN
        v_frac := v_frac - least(p_amount, p_burst) * p_interval;
        IF v_frac < 0 THEN
            v_borrow := (p_scale - 1 - v_frac) / p_scale;
            v_tat := v_tat - v_borrow;
            v_frac := v_frac + v_borrow * p_scale;
        END IF;
        IF v_tat < v_now OR (v_tat = v_now AND v_frac = 0) THEN
            DELETE FROM @table@ WHERE key = p_key;
        ELSE
            UPDATE @table@ SET t = v_tat, n = v_frac,
                expires_at = (v_tat + CASE WHEN v_frac > 0 THEN 1 ELSE 0 END) | 1048575
            WHERE key = p_key;
        END IF;
    END IF;
    RETURN @gcra@(p_key, 1, v_now, false, p_burst, p_scale, p_interval, p_tol);
END
$$;
