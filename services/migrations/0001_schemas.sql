-- Schemas: one per service, plus `auth` for tenants and keys shared by all.
CREATE SCHEMA IF NOT EXISTS auth;
CREATE SCHEMA IF NOT EXISTS flow;
CREATE SCHEMA IF NOT EXISTS crm;
CREATE SCHEMA IF NOT EXISTS secure;

-- The group role services log in through. It owns nothing, so row-level
-- security applies to it; login roles are granted membership by `migrate`.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tekup_app') THEN
        CREATE ROLE tekup_app NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
    END IF;
EXCEPTION
    -- Roles are cluster-wide: another database of the cluster may be
    -- migrating at the same moment.
    WHEN duplicate_object OR unique_violation THEN NULL;
END
$$;

CREATE TABLE auth.tenants (
    id text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    name text NOT NULL,
    active boolean NOT NULL DEFAULT true,
    allowed_apps text[] NOT NULL,
    rate_limit_per_minute integer NOT NULL DEFAULT 6000 CHECK (rate_limit_per_minute > 0),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE auth.api_keys (
    key_id text PRIMARY KEY,
    tenant_id text NOT NULL REFERENCES auth.tenants (id) ON DELETE CASCADE,
    secret_sha256 bytea NOT NULL,
    label text NOT NULL DEFAULT '',
    active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Which permissions a source app holds on a target service ('*' = every service).
CREATE TABLE auth.app_grants (
    app text NOT NULL,
    service text NOT NULL,
    permission text NOT NULL,
    PRIMARY KEY (app, service, permission)
);

GRANT USAGE ON SCHEMA auth, flow, crm, secure TO tekup_app;
GRANT SELECT, INSERT ON auth.tenants, auth.api_keys TO tekup_app;
GRANT SELECT ON auth.app_grants TO tekup_app;
