-- limits-core: delete up to p_batch rows whose expires_at has passed; return how many.
--
-- Rows are picked through the expires_at index and locked with SKIP LOCKED, so a purge never
-- waits on a key being decided; the outer WHERE is checked again on the row's latest version,
-- so a row that a concurrent decision just renewed is kept. An expired row no longer affects
-- any decision, so deleting it changes none.
-- Replaced in place, so sessions using it carry on; dropped first only if an earlier version
-- returned another type (which CREATE OR REPLACE cannot change).
DO $$
BEGIN
    IF (SELECT prorettype FROM pg_proc
        WHERE oid = to_regprocedure('@purge_expired@(bigint, integer)')) <> 'bigint'::regtype THEN
        DROP FUNCTION @purge_expired@(bigint, integer);
    END IF;
END
$$;
CREATE OR REPLACE FUNCTION @purge_expired@(p_now bigint, p_batch integer)
RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_now bigint := coalesce(p_now, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint);
    v_count bigint;
BEGIN
    DELETE FROM @table@ AS s
    WHERE s.key IN (
        SELECT e.key FROM @table@ AS e WHERE e.expires_at <= v_now
        LIMIT p_batch FOR UPDATE SKIP LOCKED
    ) AND s.expires_at <= v_now;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END
$$;
