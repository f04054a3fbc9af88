-- limits-core: forget a policy's state on one user key (every component's row); return how
-- many rows were deleted. Takes the same advisory locks as policy.sql, in the same order, so
-- it never deadlocks with a policy call writing these rows.
CREATE OR REPLACE FUNCTION @policy_reset@(p_keys text[])
RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_lock bigint;
    v_count bigint;
BEGIN
    FOR v_lock IN
        SELECT DISTINCT hashtextextended(k, 0) FROM unnest(p_keys) AS k ORDER BY 1
    LOOP
        PERFORM pg_advisory_xact_lock(v_lock);
    END LOOP;
    DELETE FROM @table@ WHERE key = ANY(p_keys);
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END
$$;
