-- limits-core: algorithms.Concurrency's release: give back the live lease p_lease of p_key.
--
-- Returns true when it was live (it then no longer holds anything); false, writing nothing,
-- when it holds nothing: unknown, already released or expired. A release locks the row,
-- prunes the expired leases with the released one, and deletes the row once no lease is left.
CREATE OR REPLACE FUNCTION @concurrency_release@(p_key text, p_lease bigint, p_now bigint)
RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_now bigint := coalesce(p_now, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint);
    v_ts bigint[];
    v_ns bigint[];
    v_ids bigint[];
    v_live_t bigint[] := '{}';
    v_live_n bigint[] := '{}';
    v_live_ids bigint[] := '{}';
    v_used bigint := 0;
    v_newest bigint := 0;
    v_released boolean := false;
BEGIN
    SELECT s.log_t, s.log_n, s.lease_ids INTO v_ts, v_ns, v_ids
    FROM @table@ AS s WHERE s.key = p_key FOR UPDATE;
    FOR i IN 1 .. coalesce(cardinality(v_ts), 0) LOOP
        IF v_ts[i] > v_now THEN
            IF v_ids[i] = p_lease THEN
                v_released := true;
            ELSE
                v_live_t := v_live_t || v_ts[i];
                v_live_n := v_live_n || v_ns[i];
                v_live_ids := v_live_ids || v_ids[i];
                v_used := v_used + v_ns[i];
                v_newest := greatest(v_newest, v_ts[i]);
            END IF;
        END IF;
    END LOOP;
    IF NOT v_released THEN
        RETURN false;
    END IF;
    IF cardinality(v_live_t) = 0 THEN
        DELETE FROM @table@ WHERE key = p_key;
    ELSE
        UPDATE @table@ SET
            n = v_used, t = v_now, log_t = v_live_t, log_n = v_live_n, lease_ids = v_live_ids,
            expires_at = v_newest | 1048575
        WHERE key = p_key;
    END IF;
    RETURN true;
END
$$;
