-- The outbox of `POST /leads`: a lead's `process-lead` job, written in the
-- lead's own transaction and deleted once the job is on the queue. Until
-- now the lead was committed and its job queued after; a flow-api killed
-- in between (or a request cancelled there) left a stored lead that no
-- job would ever process. A row here is a job that may not have reached
-- the queue: flow-api queues what it finds here when it starts (rows older
-- than its start, of every tenant), and a request that fails to queue its
-- job takes the lead back only if it can still delete its own row here
-- (otherwise someone else queued it, and the lead stands).
CREATE TABLE flow.lead_jobs (
    job_id uuid PRIMARY KEY,
    tenant_id text NOT NULL REFERENCES auth.tenants (id),
    lead_id uuid NOT NULL REFERENCES flow.leads (id) ON DELETE CASCADE,
    job jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX lead_jobs_tenant_created ON flow.lead_jobs (tenant_id, created_at);

DO $$
BEGIN
    EXECUTE 'ALTER TABLE flow.lead_jobs ENABLE ROW LEVEL SECURITY';
    EXECUTE 'ALTER TABLE flow.lead_jobs FORCE ROW LEVEL SECURITY';
    EXECUTE 'CREATE POLICY tenant_isolation ON flow.lead_jobs
                 USING (tenant_id = current_setting(''app.tenant_id'', true))
                 WITH CHECK (tenant_id = current_setting(''app.tenant_id'', true))';
    EXECUTE 'GRANT SELECT, INSERT, DELETE ON flow.lead_jobs TO tekup_app';
END
$$;
