-- The query language's CIDR test on `source`: the column is free text, so a value that is
-- not an address must count as "not in the network" rather than fail the whole query.
-- IPv4 is checked by a pattern; anything else that may be IPv6 is cast inside an exception
-- block, which needs a subtransaction. No subtransaction may start while a query runs in
-- parallel mode (in the leader too), so the function is PARALLEL UNSAFE: a query using it
-- is planned without parallel workers.
CREATE FUNCTION tk_inet(value text) RETURNS inet
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL UNSAFE AS $$
BEGIN
    IF value ~ '^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$' THEN
        RETURN value::inet;
    END IF;
    IF value !~ '^[0-9A-Fa-f:.]+$' OR strpos(value, ':') = 0 THEN
        RETURN NULL;
    END IF;
    BEGIN
        RETURN value::inet;
    EXCEPTION WHEN others THEN
        RETURN NULL;
    END;
END
$$;
