-- Stripe events already handled, by event id: a delivery of an id found
-- here (a replay, or Stripe retrying after a lost answer) is acknowledged
-- without a second effect. Event ids are unique across a Stripe account,
-- so the table is not tenant data, and lives outside the tenant schemas
-- (whose every table carries tenant_id under row-level security); rows
-- older than Stripe's retry window are pruned by the webhook handler.
CREATE SCHEMA IF NOT EXISTS webhooks;
GRANT USAGE ON SCHEMA webhooks TO tekup_app;
CREATE TABLE webhooks.stripe_events (
    event_id text PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX stripe_events_received_at ON webhooks.stripe_events (received_at);
GRANT SELECT, INSERT, DELETE ON webhooks.stripe_events TO tekup_app;
