-- limits-core: one atomic step of algorithms.FixedWindow, decision by decision.
--
-- A window opens at the first admitted hit on a key with no live window and covers
-- [start, start + period). Per key, time never runs backwards (now < start counts as start).
-- Row: n = cost admitted in the window, t = window start, expires_at = t + period.
--
-- The admitted path is one statement: an upsert whose WHERE admits the hit (its row lock
-- serializes the key; concurrent first inserts of a key are resolved by ON CONFLICT). When the
-- WHERE rejects the hit, ON CONFLICT has still locked the row, so the SELECT that follows (a
-- new snapshot at READ COMMITTED) reads exactly the state that denied it. A peek, or a cost
-- above the limit, only reads, without locking. A denied hit writes nothing.
--
-- Returns ARRAY[allowed (1 or 0), remaining, reset_after_us, retry_after_us (-1: never)].
-- Replaced in place, so sessions using it carry on; dropped first only if an earlier version
-- returned another type (which CREATE OR REPLACE cannot change).
DO $$
BEGIN
    IF (SELECT prorettype FROM pg_proc
        WHERE oid = to_regprocedure('@fixed_window@(text, bigint, bigint, boolean, bigint, bigint)')) <> 'bigint[]'::regtype THEN
        DROP FUNCTION @fixed_window@(text, bigint, bigint, boolean, bigint, bigint);
    END IF;
END
$$;
CREATE OR REPLACE FUNCTION @fixed_window@(
    p_key text, p_cost bigint, p_now bigint, p_consume boolean,
    p_limit bigint, p_period bigint
) RETURNS bigint[] LANGUAGE plpgsql VOLATILE AS $$
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
            RETURN ARRAY[1, p_limit - v_count, v_start + p_period - greatest(v_now, v_start), 0];
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
    IF p_cost > p_limit THEN
        RETURN ARRAY[0, p_limit - v_count, CASE WHEN v_count > 0 THEN v_left ELSE 0 END, -1];
    ELSIF v_count + p_cost > p_limit THEN
        RETURN ARRAY[0, p_limit - v_count, CASE WHEN v_count > 0 THEN v_left ELSE 0 END, v_left];
    ELSIF p_consume THEN
        -- The upsert admits every hit that fits: never report one admitted without counting it.
        RAISE EXCEPTION 'limits-core: fixed_window found an admissible hit it did not count';
    END IF;
    RETURN ARRAY[1, p_limit - v_count - p_cost, v_left, 0];
END
$$;

-- refund: lower the live window's count by p_amount, down to zero, under the row lock (the
-- window keeps its start and expires_at); a window that has ended is deleted, and a key with
-- no row stays without. Returns what a peek of cost 1 returns right after, in the same
-- transaction.
CREATE OR REPLACE FUNCTION @fixed_window_refund@(
    p_key text, p_amount bigint, p_now bigint, p_limit bigint, p_period bigint
) RETURNS bigint[] LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_now bigint := coalesce(p_now, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint);
    v_start bigint;
BEGIN
    SELECT s.t INTO v_start FROM @table@ AS s WHERE s.key = p_key FOR UPDATE;
    IF FOUND THEN
        IF v_now - v_start >= p_period THEN
            DELETE FROM @table@ WHERE key = p_key;
        ELSE
            UPDATE @table@ SET n = greatest(0, n - p_amount) WHERE key = p_key;
        END IF;
    END IF;
    RETURN @fixed_window@(p_key, 1, v_now, false, p_limit, p_period);
END
$$;
