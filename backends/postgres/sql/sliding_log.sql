-- limits-core: one atomic step of algorithms.SlidingLog.step, decision by decision.
--
-- The model logs one timestamp per admitted unit of cost; a unit at t counts while
-- now - t < period. The row stores the same log run-length encoded: log_n[i] units admitted at
-- log_t[i], oldest first, and n = their sum. Decisions are identical and the log has at most
-- `limit` entries (each holds at least one unit), fewer when requests cost more than one.
-- Per key, time never runs backwards (now < newest logged time counts as that time).
--
-- Returns ARRAY[allowed (1 or 0), remaining, reset_after_us, retry_after_us (-1: never)].
--
-- A hit locks the row (SELECT ... FOR UPDATE), decides, then writes it. A key with no row is
-- inserted with ON CONFLICT DO NOTHING: when a concurrent caller inserted it first, the loop
-- decides again on the row it stored, so no admission is ever lost. A peek reads without
-- locking. expires_at (garbage collection only) is the newest time plus the period, rounded up
-- to the end of its block of 2**20 µs so most updates leave the index untouched (HOT).
-- Replaced in place, so sessions using it carry on; dropped first only if an earlier version
-- returned another type (which CREATE OR REPLACE cannot change).
DO $$
BEGIN
    IF (SELECT prorettype FROM pg_proc
        WHERE oid = to_regprocedure('@sliding_log@(text, bigint, bigint, boolean, bigint, bigint)')) <> 'bigint[]'::regtype THEN
        DROP FUNCTION @sliding_log@(text, bigint, bigint, boolean, bigint, bigint);
    END IF;
END
$$;
CREATE OR REPLACE FUNCTION @sliding_log@(
    p_key text, p_cost bigint, p_now bigint, p_consume boolean,
    p_limit bigint, p_period bigint
) RETURNS bigint[] LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_now bigint;
    v_ts bigint[];
    v_ns bigint[];
    v_used bigint;
    v_len integer;
    v_first integer;
    v_excess bigint;
    v_acc bigint;
    v_found boolean;
    v_reset bigint;
BEGIN
    LOOP
        v_now := coalesce(p_now, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint);
        IF p_consume AND p_cost <= p_limit THEN
            SELECT s.log_t, s.log_n, s.n INTO v_ts, v_ns, v_used
            FROM @table@ AS s WHERE s.key = p_key FOR UPDATE;
        ELSE
            SELECT s.log_t, s.log_n, s.n INTO v_ts, v_ns, v_used
            FROM @table@ AS s WHERE s.key = p_key;
        END IF;
        v_found := FOUND;
        v_len := coalesce(cardinality(v_ts), 0);
        v_first := 1;
        IF v_len = 0 THEN
            v_used := 0;
        ELSE
            IF v_now < v_ts[v_len] THEN
                v_now := v_ts[v_len];
            END IF;
            -- Units logged at or before now - period have left the window.
            WHILE v_first <= v_len AND v_ts[v_first] <= v_now - p_period LOOP
                v_used := v_used - v_ns[v_first];
                v_first := v_first + 1;
            END LOOP;
        END IF;
        v_reset := CASE WHEN v_first <= v_len THEN v_ts[v_len] + p_period - v_now ELSE 0 END;
        IF p_cost > p_limit THEN
            RETURN ARRAY[0, p_limit - v_used, v_reset, -1];
        END IF;
        v_excess := v_used + p_cost - p_limit;
        IF v_excess > 0 THEN
            -- The request fits once the `excess` oldest live units have left the window.
            v_acc := 0;
            LOOP
                v_acc := v_acc + v_ns[v_first];
                EXIT WHEN v_acc >= v_excess;
                v_first := v_first + 1;
            END LOOP;
            RETURN ARRAY[0, p_limit - v_used, v_reset, v_ts[v_first] + p_period - v_now];
        END IF;
        IF NOT p_consume THEN
            RETURN ARRAY[1, p_limit - v_used - p_cost, p_period, 0];
        END IF;

        IF v_first <= v_len AND v_ts[v_len] = v_now THEN
            v_ts := v_ts[v_first:v_len];
            v_ns := v_ns[v_first:v_len];
            v_ns[v_len - v_first + 1] := v_ns[v_len - v_first + 1] + p_cost;
        ELSE
            v_ts := v_ts[v_first:v_len] || v_now;
            v_ns := v_ns[v_first:v_len] || p_cost;
        END IF;
        IF v_found THEN
            UPDATE @table@ SET
                n = v_used + p_cost, t = v_now, log_t = v_ts, log_n = v_ns,
                expires_at = (v_now + p_period) | 1048575
            WHERE key = p_key;
            RETURN ARRAY[1, p_limit - v_used - p_cost, p_period, 0];
        END IF;
        INSERT INTO @table@ (key, n, t, log_t, log_n, expires_at)
        VALUES (p_key, p_cost, v_now, v_ts, v_ns, (v_now + p_period) | 1048575)
        ON CONFLICT (key) DO NOTHING;
        IF FOUND THEN
            RETURN ARRAY[1, p_limit - v_used - p_cost, p_period, 0];
        END IF;
        -- A concurrent caller created the row first: decide again, on its state.
    END LOOP;
END
$$;

-- refund: take p_amount units off the newest entries of the log (the most recent
-- admissions), dropping the entries left empty, under the row lock. Entries that left the
-- window stay, as after a hit. A log left without live units is deleted, and a key with no
-- row stays without. Returns what a peek of cost 1 returns right after, in the same
-- transaction.
CREATE OR REPLACE FUNCTION @sliding_log_refund@(
    p_key text, p_amount bigint, p_now bigint, p_limit bigint, p_period bigint
) RETURNS bigint[] LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_now bigint := coalesce(p_now, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint);
    v_ts bigint[];
    v_ns bigint[];
    v_total bigint;
    v_live bigint;
    v_left bigint;
    v_len integer;
    v_first integer := 1;
BEGIN
    SELECT s.log_t, s.log_n, s.n INTO v_ts, v_ns, v_total
    FROM @table@ AS s WHERE s.key = p_key FOR UPDATE;
    IF FOUND THEN
        v_len := coalesce(cardinality(v_ts), 0);
        v_live := v_total;
        WHILE v_first <= v_len AND v_ts[v_first] <= greatest(v_now, v_ts[v_len]) - p_period LOOP
            v_live := v_live - v_ns[v_first];
            v_first := v_first + 1;
        END LOOP;
        IF v_len = 0 OR p_amount >= v_live THEN
            DELETE FROM @table@ WHERE key = p_key;
        ELSE
            v_left := p_amount;
            WHILE v_ns[v_len] <= v_left LOOP
                v_left := v_left - v_ns[v_len];
                v_len := v_len - 1;
            END LOOP;
            v_ts := v_ts[1:v_len];
            v_ns := v_ns[1:v_len];
            v_ns[v_len] := v_ns[v_len] - v_left;
            UPDATE @table@ SET
                n = v_total - p_amount, t = v_ts[v_len], log_t = v_ts, log_n = v_ns,
                expires_at = (v_ts[v_len] + p_period) | 1048575
            WHERE key = p_key;
        END IF;
    END IF;
    RETURN @sliding_log@(p_key, 1, v_now, false, p_limit, p_period);
END
$$;
