-- limits-core: one atomic step of a limits_core.Policy: several limits on one user key,
-- all or nothing (must agree with limits_core/policy.py).
--
-- p_keys[i] is component i's row, p_kinds[i] its algorithm, and p_params[5i-4 .. 5i] its
-- parameters (the trailing arguments of that algorithm's function, padded with zeros).
--
-- The components' rows may not exist yet, so row locks cannot serialize two calls: each call
-- first takes a transaction-level advisory lock on every component key (exclusive for a hit,
-- shared for a peek), in ascending order of the lock values, so two calls never wait for each
-- other in a cycle. Every writer of these rows takes the same locks (this function and
-- policy_reset; a purge only deletes rows that affect no decision and never waits). Then, at
-- one `now`, every component decides as if it stood alone (its function with
-- p_consume = false: a read in a new snapshot, which sees every call that held the locks
-- before). Only if every component admits the request and it consumes, every component
-- consumes, through the same functions. A request denied by one limit writes nothing.
--
-- Returns 4 integers per component, in order:
-- allowed (1 or 0), remaining, reset_after_us, retry_after_us (-1: never).
CREATE OR REPLACE FUNCTION @policy@(
    p_keys text[], p_cost bigint, p_now bigint, p_consume boolean,
    p_kinds text[], p_params bigint[]
) RETURNS bigint[] LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_now bigint := coalesce(p_now, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint);
    v_lock bigint;
    v_reply bigint[];
    v_part bigint[];
    v_admitted boolean := true;
    v_write boolean;
    v_o integer;
BEGIN
    FOR v_lock IN
        SELECT DISTINCT hashtextextended(k, 0) FROM unnest(p_keys) AS k ORDER BY 1
    LOOP
        IF p_consume THEN
            PERFORM pg_advisory_xact_lock(v_lock);
        ELSE
            PERFORM pg_advisory_xact_lock_shared(v_lock);
        END IF;
    END LOOP;

    -- Pass false: decide each component alone. Pass true: consume from every component.
    FOREACH v_write IN ARRAY ARRAY[false, true] LOOP
        EXIT WHEN v_write AND NOT (v_admitted AND p_consume);
        v_reply := '{}';
        FOR i IN 1 .. cardinality(p_keys) LOOP
            v_o := 5 * (i - 1);
            v_part := CASE p_kinds[i]
                WHEN 'fixed_window' THEN @fixed_window@(p_keys[i], p_cost, v_now, v_write,
                    p_params[v_o + 1], p_params[v_o + 2])
                WHEN 'sliding_log' THEN @sliding_log@(p_keys[i], p_cost, v_now, v_write,
                    p_params[v_o + 1], p_params[v_o + 2])
                WHEN 'sliding_window_counter' THEN @sliding_window_counter@(p_keys[i], p_cost,
                    v_now, v_write, p_params[v_o + 1], p_params[v_o + 2])
                WHEN 'token_bucket' THEN @token_bucket@(p_keys[i], p_cost, v_now, v_write,
                    p_params[v_o + 1], p_params[v_o + 2], p_params[v_o + 3], p_params[v_o + 4],
                    p_params[v_o + 5])
                WHEN 'gcra' THEN @gcra@(p_keys[i], p_cost, v_now, v_write,
                    p_params[v_o + 1], p_params[v_o + 2], p_params[v_o + 3], p_params[v_o + 4])
                WHEN 'leaky_bucket' THEN @leaky_bucket@(p_keys[i], p_cost, v_now, v_write,
                    p_params[v_o + 1], p_params[v_o + 2], p_params[v_o + 3], p_params[v_o + 4],
                    p_params[v_o + 5])
            END;
            IF v_part IS NULL THEN
                RAISE EXCEPTION 'limits-core: no policy component of kind %', p_kinds[i];
            END IF;
            IF v_part[1] <> 1 THEN
                -- Under the locks nothing can take capacity between the passes; raising rolls
                -- back every component already written rather than ever consuming from some.
                IF v_write THEN
                    RAISE EXCEPTION 'limits-core: policy component % denied an admitted hit', i;
                END IF;
                v_admitted := false;
            END IF;
            v_reply := v_reply || v_part;
        END LOOP;
    END LOOP;
    RETURN v_reply;
END
$$;
