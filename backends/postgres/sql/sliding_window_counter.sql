-- limits-core: one atomic step of algorithms.SlidingWindowCounter, decision by decision.
--
-- Windows [k * period, (k + 1) * period) are aligned to the epoch (floor division, so times
-- before it are aligned the same way as in the model). Per key, time never runs backwards
-- (now < last counts as last).
-- Row: t = time of the newest admission, n = cost admitted in that admission's window (curr),
-- log_n[1] = cost admitted in the window before it (prev); log_t stays NULL.
--
-- Every product stays below limit * period < 2**53, so bigint arithmetic is exact; ceil(a / b)
-- for a >= 0, b > 0 is (a + b - 1) / b.
--
-- A hit locks the row (SELECT ... FOR UPDATE), decides, then writes it. A key with no row is
-- inserted with ON CONFLICT DO NOTHING: when a concurrent caller inserted it first, the loop
-- decides again on the row it stored, so no admission is ever lost. A peek, or a cost above
-- the limit, reads without locking. A denied hit writes nothing. expires_at (garbage
-- collection only) is the end of the window after the newest admission's, when the state no
-- longer counts, rounded up to the end of its block of 2**20 µs so most updates stay HOT.
--
-- Returns ARRAY[allowed (1 or 0), remaining, reset_after_us, retry_after_us (-1: never)].
CREATE OR REPLACE FUNCTION @sliding_window_counter@(
    p_key text, p_cost bigint, p_now bigint, p_consume boolean,
    p_limit bigint, p_period bigint
) RETURNS bigint[] LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_now bigint;
    v_last bigint;
    v_prev bigint;
    v_curr bigint;
    v_found boolean;
    v_start bigint;
    v_gap bigint;
    v_elapsed bigint;
    v_left bigint;
    v_share bigint;
    v_reset bigint;
    v_retry bigint;
BEGIN
    LOOP
        v_now := coalesce(p_now, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint);
        IF p_consume AND p_cost <= p_limit THEN
            SELECT s.t, s.log_n[1], s.n INTO v_last, v_prev, v_curr
            FROM @table@ AS s WHERE s.key = p_key FOR UPDATE;
        ELSE
            SELECT s.t, s.log_n[1], s.n INTO v_last, v_prev, v_curr
            FROM @table@ AS s WHERE s.key = p_key;
        END IF;
        v_found := FOUND;
        IF v_found THEN
            IF v_now < v_last THEN
                v_now := v_last;
            END IF;
            v_start := v_now - ((v_now % p_period) + p_period) % p_period;
            -- Whole windows since the newest admission's window: its counts shift or lapse.
            v_gap := v_start - (v_last - ((v_last % p_period) + p_period) % p_period);
            IF v_gap >= 2 * p_period THEN
                v_prev := 0;
                v_curr := 0;
            ELSIF v_gap <> 0 THEN
                v_prev := v_curr;
                v_curr := 0;
            END IF;
        ELSE
            v_start := v_now - ((v_now % p_period) + p_period) % p_period;
            v_prev := 0;
            v_curr := 0;
        END IF;
        v_elapsed := v_now - v_start;
        v_left := p_period - v_elapsed;
        v_share := (v_prev * v_left + p_period - 1) / p_period;
        v_reset := CASE WHEN v_curr > 0 THEN v_left + p_period
                        WHEN v_prev > 0 THEN v_left ELSE 0 END;
        IF p_cost > p_limit THEN
            RETURN ARRAY[0, p_limit - v_curr - v_share, v_reset, -1];
        END IF;
        IF v_curr + p_cost + v_share > p_limit THEN
            IF v_curr + p_cost <= p_limit THEN
                -- Fits later in this window, once prev's share has shrunk enough (prev > 0).
                v_retry := (p_period * (v_prev + v_curr + p_cost - p_limit) + v_prev - 1) / v_prev
                           - v_elapsed;
            ELSE
                -- Fits in the next window, where curr is the previous count (curr > 0).
                v_retry := v_left
                           + (p_period * (v_curr + p_cost - p_limit) + v_curr - 1) / v_curr;
            END IF;
            RETURN ARRAY[0, p_limit - v_curr - v_share, v_reset, v_retry];
        END IF;
        IF NOT p_consume THEN
            RETURN ARRAY[1, p_limit - v_curr - p_cost - v_share, v_left + p_period, 0];
        END IF;

        IF v_found THEN
            UPDATE @table@ SET
                n = v_curr + p_cost, t = v_now, log_n = ARRAY[v_prev],
                expires_at = (v_start + 2 * p_period) | 1048575
            WHERE key = p_key;
            RETURN ARRAY[1, p_limit - v_curr - p_cost - v_share, v_left + p_period, 0];
        END IF;
        INSERT INTO @table@ (key, n, t, log_n, expires_at)
        VALUES (p_key, p_cost, v_now, ARRAY[0::bigint], (v_start + 2 * p_period) | 1048575)
        ON CONFLICT (key) DO NOTHING;
        IF FOUND THEN
            RETURN ARRAY[1, p_limit - p_cost - v_share, v_left + p_period, 0];
        END IF;
        -- A concurrent caller created the row first: decide again, on its state.
    END LOOP;
END
$$;

-- refund: lower the count of the current window (n) by p_amount, down to zero, under the row
-- lock; it does not reach into the previous window (log_n[1]), and keeps t. A state left
-- counting nothing is deleted, and a key with no row stays without. Returns what a peek of
-- cost 1 returns right after, in the same transaction.
CREATE OR REPLACE FUNCTION @sliding_window_counter_refund@(
    p_key text, p_amount bigint, p_now bigint, p_limit bigint, p_period bigint
) RETURNS bigint[] LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_now bigint := coalesce(p_now, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint);
    v_at bigint;
    v_last bigint;
    v_prev bigint;
    v_curr bigint;
    v_start bigint;
    v_gap bigint;
BEGIN
    SELECT s.t, s.log_n[1], s.n INTO v_last, v_prev, v_curr
    FROM @table@ AS s WHERE s.key = p_key FOR UPDATE;
    IF FOUND THEN
        v_at := greatest(v_now, v_last);
        v_start := v_at - ((v_at % p_period) + p_period) % p_period;
        v_gap := v_start - (v_last - ((v_last % p_period) + p_period) % p_period);
        v_curr := greatest(0, v_curr - p_amount);
        IF v_gap >= 2 * p_period OR (v_gap = 0 AND v_curr = 0 AND v_prev = 0) THEN
            DELETE FROM @table@ WHERE key = p_key;
        ELSIF v_gap = 0 THEN
            -- (v_gap > 0: nothing was admitted in this window, nothing to give back.)
            UPDATE @table@ SET n = v_curr,
                expires_at = (v_start + CASE WHEN v_curr > 0 THEN 2 ELSE 1 END * p_period)
                             | 1048575
            WHERE key = p_key;
        END IF;
    END IF;
    RETURN @sliding_window_counter@(p_key, 1, v_now, false, p_limit, p_period);
END
$$;
