-- The services' role writes no identity table. Until now `tekup_app` could
-- INSERT into auth.tenants and auth.api_keys (0001), so any service, or
-- anything that took over its connection, could issue an API key for any
-- existing tenant. Creating a tenant (`POST /admin/tenants`, `tekup-service
-- tenant create`) now goes through this one function, which runs with the
-- rights of the migrating role and can do exactly one thing: create a tenant
-- that does not exist yet, with its first keys. It can never add a key to an
-- existing tenant, and it reads no tenant table (the sweep's `database`
-- class accepts a SECURITY DEFINER function only on those terms).
CREATE FUNCTION auth.create_tenant(
    p_id text,
    p_name text,
    p_allowed_apps text[],
    p_rate_limit_per_minute integer,
    p_key_ids text[],
    p_key_secrets_sha256 bytea[],
    p_key_labels text[]
) RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
-- Every name below is qualified; the pinned path keeps the caller's
-- search_path (and its temporary schema) out of the function.
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF coalesce(cardinality(p_key_ids), 0) = 0
        OR cardinality(p_key_ids) <> coalesce(cardinality(p_key_secrets_sha256), -1)
        OR cardinality(p_key_ids) <> coalesce(cardinality(p_key_labels), -1) THEN
        RAISE EXCEPTION 'a new tenant needs at least one key, each with its secret hash and label'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO auth.tenants (id, name, allowed_apps, rate_limit_per_minute)
    VALUES (p_id, p_name, p_allowed_apps, p_rate_limit_per_minute)
    ON CONFLICT (id) DO NOTHING;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'tenant % already exists', p_id
            USING ERRCODE = 'unique_violation', CONSTRAINT = 'tenants_pkey';
    END IF;
    INSERT INTO auth.api_keys (key_id, tenant_id, secret_sha256, label)
    SELECT k.key_id, p_id, k.secret_sha256, k.label
    FROM unnest(p_key_ids, p_key_secrets_sha256, p_key_labels) AS k (key_id, secret_sha256, label);
END
$$;

-- Functions are executable by PUBLIC unless told otherwise.
REVOKE ALL ON FUNCTION auth.create_tenant(text, text, text[], integer, text[], bytea[], text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION auth.create_tenant(text, text, text[], integer, text[], bytea[], text[]) TO tekup_app;

REVOKE INSERT, UPDATE, DELETE, TRUNCATE, TRIGGER, REFERENCES
    ON auth.tenants, auth.api_keys, auth.app_grants FROM tekup_app;
