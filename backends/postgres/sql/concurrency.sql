-- limits-core: algorithms.Concurrency's peek and acquire, decision by decision.
--
-- The row holds the leases of one key as parallel arrays: log_t[i] the expiry (µs), log_n[i]
-- the cost and lease_ids[i] the id of lease i; n is the cost in flight. A lease is live while
-- now < its expiry. With p_consume an acquire takes the lease p_lease, else the call only
-- peeks; a hit (p_consume without a lease) is refused: leases are taken by acquire().
--
-- Returns ARRAY[allowed (1 or 0), remaining, reset_after_us, retry_after_us (-1: never)].
--
-- An acquire locks the row (SELECT ... FOR UPDATE), prunes the expired leases, decides, then
-- writes it; a key with no row is inserted with ON CONFLICT DO NOTHING, and when a concurrent
-- caller inserted it first the loop decides again on its row. A peek or a denial writes
-- nothing. expires_at (garbage collection only) is the latest expiry, rounded up to the end of
-- its block of 2**20 µs so most updates leave the index untouched (HOT).
CREATE OR REPLACE FUNCTION @concurrency@(
    p_key text, p_cost bigint, p_now bigint, p_consume boolean,
    p_limit bigint, p_ttl bigint, p_lease bigint DEFAULT NULL
) RETURNS bigint[] LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_now bigint;
    v_ts bigint[];
    v_ns bigint[];
    v_ids bigint[];
    v_found boolean;
    v_live_t bigint[];
    v_live_n bigint[];
    v_live_ids bigint[];
    v_used bigint;
    v_newest bigint;
    v_excess bigint;
    v_retry bigint;
BEGIN
    IF p_consume AND p_lease IS NULL THEN
        RAISE EXCEPTION 'a concurrency limit takes leases with acquire(), not hits'
            USING ERRCODE = '22023';
    END IF;
    LOOP
        v_now := coalesce(p_now, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint);
        IF p_consume AND p_cost <= p_limit THEN
            SELECT s.log_t, s.log_n, s.lease_ids INTO v_ts, v_ns, v_ids
            FROM @table@ AS s WHERE s.key = p_key FOR UPDATE;
        ELSE
            SELECT s.log_t, s.log_n, s.lease_ids INTO v_ts, v_ns, v_ids
            FROM @table@ AS s WHERE s.key = p_key;
        END IF;
        v_found := FOUND;
        v_live_t := '{}';
        v_live_n := '{}';
        v_live_ids := '{}';
        v_used := 0;
        v_newest := v_now;
        FOR i IN 1 .. coalesce(cardinality(v_ts), 0) LOOP
            IF v_ts[i] > v_now THEN
                v_live_t := v_live_t || v_ts[i];
                v_live_n := v_live_n || v_ns[i];
                v_live_ids := v_live_ids || v_ids[i];
                v_used := v_used + v_ns[i];
                v_newest := greatest(v_newest, v_ts[i]);
            END IF;
        END LOOP;
        IF p_cost > p_limit THEN
            RETURN ARRAY[0, p_limit - v_used, v_newest - v_now, -1];
        END IF;
        v_excess := v_used + p_cost - p_limit;
        IF v_excess > 0 THEN
            -- The request fits once leases holding `excess` cost have expired, earliest first
            -- (leases expiring together free their cost together).
            SELECT min(e) INTO v_retry FROM (
                SELECT u.e, sum(u.c) OVER (ORDER BY u.e) AS freed
                FROM unnest(v_live_t, v_live_n) AS u(e, c)
            ) AS w WHERE w.freed >= v_excess;
            RETURN ARRAY[0, p_limit - v_used, v_newest - v_now, v_retry - v_now];
        END IF;
        v_newest := greatest(v_newest, v_now + p_ttl);
        IF NOT p_consume THEN
            RETURN ARRAY[1, p_limit - v_used - p_cost, v_newest - v_now, 0];
        END IF;

        IF v_found THEN
            UPDATE @table@ SET
                n = v_used + p_cost, t = v_now,
                log_t = v_live_t || (v_now + p_ttl), log_n = v_live_n || p_cost,
                lease_ids = v_live_ids || p_lease, expires_at = v_newest | 1048575
            WHERE key = p_key;
            RETURN ARRAY[1, p_limit - v_used - p_cost, v_newest - v_now, 0];
        END IF;
        INSERT INTO @table@ (key, n, t, log_t, log_n, lease_ids, expires_at)
        VALUES (p_key, p_cost, v_now, ARRAY[v_now + p_ttl], ARRAY[p_cost], ARRAY[p_lease],
                v_newest | 1048575)
        ON CONFLICT (key) DO NOTHING;
        IF FOUND THEN
            RETURN ARRAY[1, p_limit - v_used - p_cost, v_newest - v_now, 0];
        END IF;
        -- A concurrent caller created the row first: decide again, on its state.
    END LOOP;
END
$$;
