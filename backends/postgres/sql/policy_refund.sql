-- limits-core: give cost back to every limit of a limits_core.Policy on one user key (they were
-- consumed together), in one step (must agree with Policy.refund).
--
-- Arguments as policy.sql's, with p_amount in place of the cost and consume. Takes the same
-- advisory locks as policy.sql, in the same order, then runs each component's refund function,
-- which locks its row, gives back at most that limit's capacity and never creates a row.
--
-- Returns 4 integers per component, in order: the decision a peek of cost 1 gets right after.
CREATE OR REPLACE FUNCTION @policy_refund@(
    p_keys text[], p_amount bigint, p_now bigint, p_kinds text[], p_params bigint[]
) RETURNS bigint[] LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_now bigint := coalesce(p_now, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint);
    v_lock bigint;
    v_reply bigint[] := '{}';
    v_part bigint[];
    v_amount bigint;
    v_o integer;
BEGIN
    FOR v_lock IN
        SELECT DISTINCT hashtextextended(k, 0) FROM unnest(p_keys) AS k ORDER BY 1
    LOOP
        PERFORM pg_advisory_xact_lock(v_lock);
    END LOOP;
    FOR i IN 1 .. cardinality(p_keys) LOOP
        v_o := 5 * (i - 1);
        -- Every kind's first parameter is its capacity: no limit gives back more than that.
        v_amount := least(p_amount, p_params[v_o + 1]);
        v_part := CASE p_kinds[i]
            WHEN 'fixed_window' THEN @fixed_window_refund@(p_keys[i], v_amount, v_now,
                p_params[v_o + 1], p_params[v_o + 2])
            WHEN 'sliding_log' THEN @sliding_log_refund@(p_keys[i], v_amount, v_now,
                p_params[v_o + 1], p_params[v_o + 2])
            WHEN 'sliding_window_counter' THEN @sliding_window_counter_refund@(p_keys[i],
                v_amount, v_now, p_params[v_o + 1], p_params[v_o + 2])
            WHEN 'token_bucket' THEN @token_bucket_refund@(p_keys[i], v_amount, v_now,
                p_params[v_o + 1], p_params[v_o + 2], p_params[v_o + 3], p_params[v_o + 4],
                p_params[v_o + 5])
            WHEN 'gcra' THEN @gcra_refund@(p_keys[i], v_amount, v_now,
                p_params[v_o + 1], p_params[v_o + 2], p_params[v_o + 3], p_params[v_o + 4])
            WHEN 'leaky_bucket' THEN @leaky_bucket_refund@(p_keys[i], v_amount, v_now,
                p_params[v_o + 1], p_params[v_o + 2], p_params[v_o + 3], p_params[v_o + 4],
                p_params[v_o + 5])
        END;
        IF v_part IS NULL THEN
            RAISE EXCEPTION 'limits-core: no policy component of kind %', p_kinds[i];
        END IF;
        v_reply := v_reply || v_part;
    END LOOP;
    RETURN v_reply;
END
$$;
