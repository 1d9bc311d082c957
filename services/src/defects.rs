//! Deliberate defects, for testing the tests.
//!
//! The harness proves its checks can fail by running them against services
//! that misbehave on purpose. Defects exist only in builds made with the
//! `defects` cargo feature (the `tekup-service-defects` binary); the
//! default and release builds have none of this code, and refuse to start
//! when `TEKUP_DEFECTS` is set. In a defects build, `TEKUP_DEFECTS` (a
//! comma-separated list, read once at start) turns them on; unset, nothing
//! changes. A service with defects on says so loudly in its log at start.
//!
//! | name               | what goes wrong                                               |
//! |--------------------|---------------------------------------------------------------|
//! | `skip-lead-event`  | lead processing never publishes `LEAD_CREATED`                |
//! | `cross-tenant-fanout` | the gateway delivers an event to the app's rooms of every tenant (the tenant filter is gone) |
//! | `duplicate-activity` | lead processing records its activity without the once-per-lead key |
//! | `no-job-retry`     | the worker acknowledges a failed job and drops it: no retry, no dead letter |
//! | `access-skip-permission` | a handler's permission check always passes |
//! | `access-suspended` | a suspended tenant's key is accepted |
//! | `access-dup-header` | a credential header given twice counts by its first value |
//! | `access-late-check` | `POST /leads` stores the lead before it checks the permission (then answers 403) |
//! | `gateway-any-room` | the gateway lets a connection join any room |
//! | `metrics-any-method` | `/metrics` labels requests by the raw method: every invented method name is a new series |
//! | `no-conn-timeouts` | connections are served without a header-read timer: slow-header and idle connections stay open |
//! | `ws-no-frame-limit` | the gateway reads WebSocket messages up to tungstenite's defaults (64 MiB) |
//! | `log-unbounded`    | the gateway logs a refused room name whole |
//! | `db-identity-writes` | `migrate` grants the services' role INSERT on `auth.api_keys` again |
//! | `db-rls-off`       | `migrate` turns row-level security off on `crm.deals` (neither enabled nor forced) |
//! | `db-definer-leak`  | `migrate` adds `flow.recent_leads()`, a `SECURITY DEFINER` function returning every tenant's leads, executable by the services' role |
//! | `db-view-leak`     | `migrate` adds the view `flow.lead_emails` (not `security_invoker`) and the materialized view `crm.contact_counts`, readable by the services' role |
//! | `db-forgotten-table` | `migrate` adds `crm.notes`, a table with `tenant_id` and no row-level security |
//! | `db-role-powers`   | `migrate` gives the services' role `BYPASSRLS` and `CREATEDB` and the ownership of `flow.compliance_reports` |
//! | `token-no-lifetime-cap` | cross-app tokens are not held to the lifetime ceiling nor to an `iat` within the leeway |
//! | `webhook-replay`   | the Stripe webhook handles an event id it has already handled again |
//! | `webhook-no-timestamp` | the Stripe webhook ignores the signature's timestamp tolerance |
//! | `input-nul-500`    | text is not checked for control characters: a NUL byte reaches Postgres, which fails the request (500) |
//! | `input-foreign-ids` | ids inside request bodies (`leadId`, `entityId`, `incidentId`, `contactId`) are not checked to be the caller's tenant's |
//! | `input-admin-body-first` | `POST /admin/tenants` reads its body before it checks the admin token: a malformed body without the token answers 400, not 401 |
//! | `input-late-refusal` | a compliance report's `incidentId` is checked after the report is stored: another tenant's incident is refused (404), but the report stays |
//! | `audit-skip`       | the gateway's audit writer drops one row in seven (counted per process) |
//! | `trace-drops-job-context` | enqueueing a job leaves out its `traceparent`: the worker's processing starts a new trace |
//! | `worker-no-reclaim` | the worker never takes over the jobs a dead worker held: they stay pending |
//! | `lead-enqueued-twice` | `POST /leads` queues the lead's processing twice, under two job ids (the lead is processed twice; its effects are idempotent, so the stores look right) |
//! | `lead-no-outbox`   | `POST /leads` queues the lead's job after the commit with no outbox row: a flow-api killed in between leaves the lead stored and never processed |
//! | `crm-refused-final` | lead processing takes a CRM call that failed other than by timing out (the CRM API is down: refused, or closed mid-request) as final: the lead stays without its contact and the job is acknowledged |
//! | `outage-500`       | a database or Redis that is down is answered like a bug: 500, without `Retry-After` |
//! | `outage-sticky`    | after a dependency failed, every tenant request is refused (503) until 30 s after its last failure, long after it came back |
//! | `gateway-resume-from-now` | the gateway ignores a reconnecting client's last event id: what was published while it was away is never sent |
//! | `breaker-gauge-stale` | `/metrics` and `/admin/breakers` show the breakers as last recorded: an open breaker whose time passed reads open (`circuit_breaker_state` 1) until a call comes |
//! | `job-retries-by-count` | the worker dead-letters a failed job once its queue's retries are used, however short the time it has been failing (its retry span ignored): a five-second outage dead-letters leads |

/// The defects a `defects` build knows.
pub const KNOWN: &[&str] = &[
    "skip-lead-event",
    "cross-tenant-fanout",
    "duplicate-activity",
    "no-job-retry",
    "access-skip-permission",
    "access-suspended",
    "access-dup-header",
    "access-late-check",
    "gateway-any-room",
    "metrics-any-method",
    "no-conn-timeouts",
    "ws-no-frame-limit",
    "log-unbounded",
    "db-identity-writes",
    "db-rls-off",
    "db-definer-leak",
    "db-view-leak",
    "db-forgotten-table",
    "db-role-powers",
    "token-no-lifetime-cap",
    "webhook-replay",
    "webhook-no-timestamp",
    "input-nul-500",
    "input-foreign-ids",
    "input-late-refusal",
    "input-admin-body-first",
    "audit-skip",
    "trace-drops-job-context",
    "lead-enqueued-twice",
    "worker-no-reclaim",
    "lead-no-outbox",
    "crm-refused-final",
    "gateway-resume-from-now",
    "breaker-gauge-stale",
    "job-retries-by-count",
    // One line per defect below; keep the table above in step.
    "outage-500",
    "outage-sticky",
];

/// The variable that turns defects on.
pub const VAR: &str = "TEKUP_DEFECTS";

fn requested() -> Vec<String> {
    std::env::var(VAR)
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(feature = "defects")]
fn enabled() -> &'static Vec<String> {
    static ENABLED: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    ENABLED.get_or_init(requested)
}

/// Whether the defect `name` is on (never, in a build without the `defects` feature).
#[cfg(feature = "defects")]
pub fn active(name: &str) -> bool {
    debug_assert!(KNOWN.contains(&name), "unknown defect {name}");
    enabled().iter().any(|d| d == name)
}

/// Whether the defect `name` is on (never, in a build without the `defects` feature).
#[cfg(not(feature = "defects"))]
pub fn active(name: &str) -> bool {
    debug_assert!(KNOWN.contains(&name), "unknown defect {name}");
    false
}

/// Logs the defects that are on; refuses names it does not know, and any
/// defect at all in a build without the `defects` feature.
pub fn announce() -> Result<(), String> {
    let requested = requested();
    if requested.is_empty() {
        return Ok(());
    }
    if !cfg!(feature = "defects") {
        return Err(format!(
            "{VAR}={} asks for deliberate defects, but this build has none: they exist only in \
             the `tekup-service-defects` binary (`cargo build -p tekup-services --features defects \
             --bin tekup-service-defects`); unset {VAR} to run this one",
            requested.join(",")
        ));
    }
    let unknown: Vec<&String> = requested
        .iter()
        .filter(|d| !KNOWN.contains(&d.as_str()))
        .collect();
    if !unknown.is_empty() {
        return Err(format!(
            "{VAR} names unknown defects {unknown:?}; the known ones are {}",
            KNOWN.join(", ")
        ));
    }
    tracing::warn!(defects = ?requested, "DELIBERATE DEFECTS ARE ON ({VAR}): this service misbehaves on purpose");
    Ok(())
}
