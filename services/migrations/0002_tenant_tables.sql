-- Tenant data. Every table carries tenant_id and is guarded by row-level
-- security keyed on the transaction setting `app.tenant_id`, which the
-- services set per request. A query that forgets its tenant filter still
-- sees only the current tenant's rows; with no tenant set it sees nothing.

CREATE TABLE flow.leads (
    id uuid PRIMARY KEY,
    tenant_id text NOT NULL REFERENCES auth.tenants (id),
    first_name text NOT NULL,
    last_name text,
    email text NOT NULL,
    company text,
    phone text,
    source text,
    status text NOT NULL DEFAULT 'new'
        CHECK (status IN ('new', 'contacted', 'qualified', 'converted', 'lost')),
    contact_id uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX leads_tenant_created ON flow.leads (tenant_id, created_at DESC);

CREATE TABLE flow.activities (
    id uuid PRIMARY KEY,
    tenant_id text NOT NULL REFERENCES auth.tenants (id),
    type text NOT NULL,
    entity_type text NOT NULL,
    entity_id uuid,
    description text,
    data jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX activities_tenant_entity ON flow.activities (tenant_id, entity_id);

CREATE TABLE flow.compliance_reports (
    id uuid PRIMARY KEY,
    tenant_id text NOT NULL REFERENCES auth.tenants (id),
    incident_id uuid,
    severity text NOT NULL CHECK (severity IN ('low', 'medium', 'high', 'critical')),
    summary text NOT NULL,
    data jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE crm.contacts (
    id uuid PRIMARY KEY,
    tenant_id text NOT NULL REFERENCES auth.tenants (id),
    email text NOT NULL CHECK (email = lower(email)),
    first_name text,
    last_name text,
    company text,
    phone text,
    source text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, email)
);

CREATE TABLE crm.contact_leads (
    tenant_id text NOT NULL REFERENCES auth.tenants (id),
    contact_id uuid NOT NULL REFERENCES crm.contacts (id) ON DELETE CASCADE,
    lead_id uuid NOT NULL,
    associated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (contact_id, lead_id)
);

CREATE TABLE crm.deals (
    id uuid PRIMARY KEY,
    tenant_id text NOT NULL REFERENCES auth.tenants (id),
    contact_id uuid REFERENCES crm.contacts (id),
    title text NOT NULL,
    amount_cents bigint NOT NULL CHECK (amount_cents >= 0),
    currency text NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
    stage text NOT NULL DEFAULT 'open' CHECK (stage IN ('open', 'won', 'lost')),
    won_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE secure.incidents (
    id uuid PRIMARY KEY,
    tenant_id text NOT NULL REFERENCES auth.tenants (id),
    title text NOT NULL,
    severity text NOT NULL CHECK (severity IN ('low', 'medium', 'high', 'critical')),
    status text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved')),
    description text,
    source text,
    created_at timestamptz NOT NULL DEFAULT now(),
    resolved_at timestamptz
);

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY[
        'flow.leads', 'flow.activities', 'flow.compliance_reports',
        'crm.contacts', 'crm.contact_leads', 'crm.deals',
        'secure.incidents'
    ] LOOP
        EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %s
                 USING (tenant_id = current_setting(''app.tenant_id'', true))
                 WITH CHECK (tenant_id = current_setting(''app.tenant_id'', true))', t);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %s TO tekup_app', t);
    END LOOP;
END
$$;
