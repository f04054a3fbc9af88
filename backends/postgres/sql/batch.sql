-- limits-core: many decisions of one algorithm in one statement (one round trip, one commit).
--
-- Request i is (p_keys[i], p_costs[i], p_nows[i], p_consumes[i]); p_params are the algorithm's
-- trailing arguments, as a single decision passes them. Each request is decided by the
-- algorithm's own function, so a batch decides exactly as the same calls made one by one.
--
-- Requests run in the order (key, i): requests on one key keep their order and each sees the
-- effect of the ones before it, and every batch takes its row locks in ascending key order, so
-- two batches locking overlapping keys wait for each other but never deadlock. The key order is
-- the "C" collation's, the table key's own.
--
-- The whole batch is one transaction: if it fails (or its connection is lost before the
-- commit), no request of it is counted.
--
-- Fixed window, set-based: when every request of a batch is a hit at one time on a key of its
-- own, one upsert over the arrays admits every hit that fits (the fixed_window function's own
-- upsert, row by row in key order), which costs the server about half of a call per request.
-- The requests it did not admit then go through the function as usual: it finds each one's
-- row as the upsert left it (locked, unchanged), so they are decided exactly as one by one.
--
-- Returns the decisions in request order, flattened four values per request:
-- ARRAY[allowed_1, remaining_1, reset_after_us_1, retry_after_us_1, allowed_2, ...].
DO $$
BEGIN
    IF (SELECT prorettype FROM pg_proc
        WHERE oid = to_regprocedure('@batch@(text, text[], bigint[], bigint[], boolean[], bigint[])')) <> 'bigint[]'::regtype THEN
        DROP FUNCTION @batch@(text, text[], bigint[], bigint[], boolean[], bigint[]);
    END IF;
END
$$;
CREATE OR REPLACE FUNCTION @batch@(
    p_kind text, p_keys text[], p_costs bigint[], p_nows bigint[], p_consumes boolean[],
    p_params bigint[]
) RETURNS bigint[] LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_count integer := coalesce(cardinality(p_keys), 0);
    v_out bigint[] := array_fill(0::bigint, ARRAY[4 * v_count]);
    v_reply bigint[];
    v_i integer;
    v_done boolean[] := array_fill(false, ARRAY[v_count]);
    v_now bigint;
    v_n bigint;
    v_t bigint;
    v_admitted integer := 0;
BEGIN
    IF coalesce(cardinality(p_costs), 0) <> v_count OR coalesce(cardinality(p_nows), 0) <> v_count
            OR coalesce(cardinality(p_consumes), 0) <> v_count THEN
        RAISE EXCEPTION 'limits-core: batch arrays of different lengths';
    END IF;
    IF p_kind = 'fixed_window' AND v_count > 1 AND (
            SELECT count(DISTINCT u.k) = v_count AND bool_and(u.c IS TRUE)
                   AND bool_and(u.n IS NOT DISTINCT FROM p_nows[1])
            FROM unnest(p_keys, p_consumes, p_nows) AS u(k, c, n)) THEN
        v_now := coalesce(p_nows[1], (extract(epoch FROM clock_timestamp()) * 1000000)::bigint);
        FOR v_i, v_n, v_t IN
            WITH r AS (
                SELECT u.k, u.c, u.i FROM unnest(p_keys, p_costs) WITH ORDINALITY AS u(k, c, i)
                WHERE u.c <= p_params[1]
            ), w AS (
                INSERT INTO @table@ AS s (key, n, t, expires_at)
                SELECT r.k, r.c, v_now, v_now + p_params[2] FROM r ORDER BY r.k COLLATE "C"
                ON CONFLICT (key) DO UPDATE SET
                    n = CASE WHEN v_now - s.t >= p_params[2] THEN 0 ELSE s.n END + excluded.n,
                    t = CASE WHEN v_now - s.t >= p_params[2] THEN v_now ELSE s.t END,
                    expires_at = CASE WHEN v_now - s.t >= p_params[2] THEN v_now + p_params[2]
                                      ELSE s.expires_at END
                WHERE CASE WHEN v_now - s.t >= p_params[2] THEN 0 ELSE s.n END + excluded.n
                      <= p_params[1]
                RETURNING s.key, s.n, s.t
            )
            SELECT r.i, w.n, w.t FROM w JOIN r ON r.k = w.key
        LOOP
            v_out[4 * v_i - 3 : 4 * v_i] :=
                ARRAY[1, p_params[1] - v_n, v_t + p_params[2] - greatest(v_now, v_t), 0];
            v_done[v_i] := true;
            v_admitted := v_admitted + 1;
        END LOOP;
        IF v_admitted = v_count THEN
            RETURN v_out;
        END IF;
    END IF;
    FOR v_i IN
        SELECT r.i FROM unnest(p_keys) WITH ORDINALITY AS r(k, i) ORDER BY r.k COLLATE "C", r.i
    LOOP
        CONTINUE WHEN v_done[v_i];
        v_reply := CASE p_kind
            WHEN 'fixed_window' THEN @fixed_window@(
                p_keys[v_i], p_costs[v_i], p_nows[v_i], p_consumes[v_i], p_params[1], p_params[2])
            WHEN 'token_bucket' THEN @token_bucket@(
                p_keys[v_i], p_costs[v_i], p_nows[v_i], p_consumes[v_i],
                p_params[1], p_params[2], p_params[3], p_params[4], p_params[5])
            WHEN 'sliding_log' THEN @sliding_log@(
                p_keys[v_i], p_costs[v_i], p_nows[v_i], p_consumes[v_i], p_params[1], p_params[2])
            WHEN 'sliding_window_counter' THEN @sliding_window_counter@(
                p_keys[v_i], p_costs[v_i], p_nows[v_i], p_consumes[v_i], p_params[1], p_params[2])
            WHEN 'gcra' THEN @gcra@(
                p_keys[v_i], p_costs[v_i], p_nows[v_i], p_consumes[v_i],
                p_params[1], p_params[2], p_params[3], p_params[4])
            WHEN 'leaky_bucket' THEN @leaky_bucket@(
                p_keys[v_i], p_costs[v_i], p_nows[v_i], p_consumes[v_i],
                p_params[1], p_params[2], p_params[3], p_params[4], p_params[5])
        END;
        IF v_reply IS NULL THEN
            RAISE EXCEPTION 'limits-core: no batch decision for algorithm %', p_kind;
        END IF;
        v_out[4 * v_i - 3 : 4 * v_i] := v_reply;
    END LOOP;
    RETURN v_out;
END
$$;
