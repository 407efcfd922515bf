-- The query language's CIDR test on `source`: the column is free text, so a value that is
-- not an address must count as "not in the network" rather than fail the whole query.
CREATE FUNCTION tk_inet(value text) RETURNS inet
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
BEGIN
    RETURN value::inet;
EXCEPTION WHEN others THEN
    RETURN NULL;
END
$$;
