-- The gateway's audit of delivered events, the idempotency of queue jobs,
-- and the Stripe side of won deals.

CREATE SCHEMA IF NOT EXISTS gateway;
GRANT USAGE ON SCHEMA gateway TO tekup_app;

-- One row per event and room (tenant, app) it was delivered to.
CREATE TABLE gateway.event_audit (
    id bigserial PRIMARY KEY,
    tenant_id text NOT NULL REFERENCES auth.tenants (id),
    event_id uuid NOT NULL,
    event_type text NOT NULL,
    cursor text NOT NULL,
    app text NOT NULL,
    connections integer NOT NULL CHECK (connections >= 0),
    delivered_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX event_audit_tenant_event ON gateway.event_audit (tenant_id, event_id);
GRANT USAGE ON SEQUENCE gateway.event_audit_id_seq TO tekup_app;

-- Effects a job has had, keyed by job id: a job delivered twice finds its
-- row and does not repeat the effect.
ALTER TABLE flow.activities ADD COLUMN dedupe_key text;
CREATE UNIQUE INDEX activities_dedupe ON flow.activities (tenant_id, dedupe_key) WHERE dedupe_key IS NOT NULL;

ALTER TABLE crm.deals ADD COLUMN stripe_customer_id text, ADD COLUMN stripe_payment_intent_id text,
    ADD COLUMN paid_at timestamptz;

DO $$
BEGIN
    EXECUTE 'ALTER TABLE gateway.event_audit ENABLE ROW LEVEL SECURITY';
    EXECUTE 'ALTER TABLE gateway.event_audit FORCE ROW LEVEL SECURITY';
    EXECUTE 'CREATE POLICY tenant_isolation ON gateway.event_audit
                 USING (tenant_id = current_setting(''app.tenant_id'', true))
                 WITH CHECK (tenant_id = current_setting(''app.tenant_id'', true))';
    EXECUTE 'GRANT SELECT, INSERT ON gateway.event_audit TO tekup_app';
END
$$;
