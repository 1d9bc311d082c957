//! The witness: a tenant that takes part in nothing, and at the end of a
//! run must have seen nothing and suffered nothing. A leak then fails the
//! run even when no scenario, case or suite thought to look for it.
//!
//! [`Witness::set_up`] creates a fresh tenant beside the run's, connects
//! it to the gateway as every app of the contract (one connection per
//! room), and makes a few objects through the API as the first app the
//! contract allows: a lead, a contact, a deal on that contact (nothing that
//! calls the mocks: no incidents, no voice). It then waits, on conditions
//! with a deadline, until the platform is done with them: the lead names
//! its contact, its `LEAD_CREATED` reached every room the contract routes
//! it to, every event the witness's tenant published reached its routed
//! rooms, every job of the tenant left its queue, and the witness's own
//! deliveries are audited ([`super::Audit`]). Waiting on the witness's own
//! objects, events and jobs, not on the platform's queues going quiet,
//! keeps the set-up at a second or two on a busy platform. Then it takes
//! the fingerprint.
//!
//! The connections are opened *before* the objects are made, so the
//! witness's own events arrive while it sets up (which is how it knows they
//! were delivered) and a leak during the set-up is caught too. From the
//! fingerprint on, [`Witness::check`] reports:
//!
//! - **frames**: any event another tenant's (a leak, at any time), and any
//!   at all after the fingerprint (its own: the platform acted for a
//!   tenant that asked for nothing); a connection that ended is reported
//!   as blind, since what came after it could not be seen;
//! - **jobs and events**: any job on any queue (live or dead-letter
//!   stream) and any event published for the witness tenant after the
//!   fingerprint, tailed from Redis as they come (a handled job is deleted
//!   from its stream, so reading at the end would miss it; the tail misses
//!   only what is added and removed while it reconnects after losing
//!   Redis, and says how often that was);
//! - **mock calls**: any call a mock received after the fingerprint whose
//!   journal entry (path, query, headers, body) holds the witness's tenant
//!   id or one of the correlation ids of the witness's own requests. The
//!   reference services send the tenant id to a mock only where the
//!   external API takes it (Stripe's `metadata[tenant_id]`) and carry the
//!   caller's correlation id on their outbound calls; a call made for the
//!   witness that carries neither (a Graph mail about another tenant's
//!   data sent to the witness's address, say) cannot be told from any
//!   other, and is not caught;
//! - **its objects**: a fingerprint per table of `stores.tenant-tables`,
//!   `md5` of the witness tenant's rows read as superuser (past row-level
//!   security), and the answers of the API reads of its objects (`GET
//!   /leads/{id}`, `GET /contacts`, `GET /deals` as the contract's apps),
//!   compared before and after. Without database access (an external
//!   deployment without a DSN) the tables are skipped, with the reason in
//!   the report's header, and the API reads still stand for the objects:
//!   they see what the platform serves, the tables see rows the API does
//!   not show (an audit row, an activity).
//!
//! What it cannot see, in any case: a leak to a room or table the witness
//! has no stake in (another run tenant's), which is the run's own checks'
//! business; an effect that has not happened yet when the run ends.

mod check;
mod report;
mod setup;
mod tail;

use std::time::Duration;

use serde_json::Value;

pub use report::{WitnessFinding, WitnessReport};
use setup::{Caller, Objects, Read, Settle};
use tail::Tail;

use super::audit::{qualified, Audit};
use crate::env::{error_chain, Ecosystem, Kind};
use crate::platform::{Platform, Subscriber, TenantKey, GATEWAY, TENANT_SERVICE};

/// How long the set-up waits for the platform to be done with the
/// witness's objects (seconds on a healthy platform).
pub const SET_UP_WITHIN: Duration = Duration::from_secs(20);
/// How long each connection's handshake may take.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// A witness tenant, set up and fingerprinted. Dropping it closes its
/// connections.
#[derive(Debug)]
pub struct Witness {
    /// The header, and what the set-up found.
    report: WitnessReport,
    /// Absent when the witness could not be created at all.
    live: Option<Live>,
}

#[derive(Debug)]
struct Live {
    platform: Platform,
    tenant: TenantKey,
    /// Of every correlation id the witness sent.
    prefix: String,
    subs: Vec<(String, Subscriber)>,
    /// Events each connection had at the fingerprint.
    baseline: Vec<usize>,
    tail: Option<Tail>,
    /// Redis's clock at the fingerprint (ms).
    cut_ms: u64,
    pg: Option<sqlx::PgPool>,
    tables: Vec<(String, Result<Option<String>, String>)>,
    reads: Vec<(Read, Result<Value, String>)>,
    /// Mock name, admin URL, the last journal entry at the fingerprint.
    mocks: Vec<(String, String, u64)>,
}

impl Witness {
    /// Creates, connects and fingerprints a witness on `eco`; `label`
    /// goes into its tenant's name (`witness-<label>-…`). Never fails:
    /// what went wrong is in its report ([`Witness::check`]).
    pub async fn set_up(eco: &Ecosystem, label: &str) -> Witness {
        let mut report = WitnessReport::default();
        let platform = match Platform::from_ecosystem(eco) {
            Ok(p) => p,
            Err(e) => {
                report
                    .skipped
                    .push(format!("everything: {}", error_chain(&e)));
                return Witness { report, live: None };
            }
        };
        for service in [TENANT_SERVICE, GATEWAY] {
            if platform.url(service).is_err() {
                report.skipped.push(format!(
                    "everything: the ecosystem has no `{service}` service"
                ));
                return Witness { report, live: None };
            }
        }
        let tenant = match platform.create_tenant(&format!("witness-{label}")).await {
            Ok(t) => t,
            Err(e) => {
                report.findings.push(WitnessFinding::SetUp(format!(
                    "creating its tenant failed: {}",
                    error_chain(&e)
                )));
                return Witness { report, live: None };
            }
        };
        report.tenant = tenant.id.clone();
        let live = Live::set_up(eco, platform, tenant, &mut report).await;
        Witness {
            report,
            live: Some(live),
        }
    }

    /// The witness tenant's id (empty when it could not be created).
    pub fn tenant(&self) -> &str {
        &self.report.tenant
    }

    /// What the witness saw and suffered since its fingerprint (and any
    /// leak during its set-up). May be called more than once.
    pub async fn check(&self) -> WitnessReport {
        let mut report = self.report.clone();
        if let Some(live) = &self.live {
            live.check(&mut report).await;
        }
        report.findings.sort();
        report.findings.dedup();
        report
    }
}

impl Live {
    async fn set_up(
        eco: &Ecosystem,
        platform: Platform,
        tenant: TenantKey,
        report: &mut WitnessReport,
    ) -> Live {
        let contract = crate::contract::active();
        let prefix = format!("tkw-{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
        let opened = futures::future::join_all(
            contract
                .apps
                .iter()
                .map(|app| platform.subscribe(&tenant, app, HANDSHAKE)),
        )
        .await;
        let mut subs = Vec::new();
        for (app, sub) in contract.apps.iter().zip(opened) {
            match sub {
                Ok(sub) => subs.push((app.clone(), sub)),
                Err(e) => report.findings.push(WitnessFinding::SetUp(format!(
                    "connecting as {app} failed: {}",
                    error_chain(&e)
                ))),
            }
        }
        report
            .watched
            .push(format!("{} rooms (every app's)", subs.len()));
        let tail = match redis_client(eco) {
            Ok(client) => match Tail::start(client, &tenant.id).await {
                Ok(tail) => Some(tail),
                Err(e) => {
                    report
                        .findings
                        .push(WitnessFinding::SetUp(format!("tailing Redis: {e}")));
                    None
                }
            },
            Err(why) => {
                report
                    .skipped
                    .push(format!("queues and published events: {why}"));
                None
            }
        };
        let pg = match eco.postgres_pool().await {
            Ok(pg) => Some(pg),
            Err(e) => {
                report.skipped.push(format!(
                    "the tables (no database access: {}); its objects are fingerprinted through the API reads only",
                    error_chain(&e)
                ));
                None
            }
        };
        let audit = match &pg {
            Some(pg) => match Audit::new(pg.clone(), contract) {
                Ok(a) => Some(a),
                Err(e) => {
                    report.skipped.push(format!("its own audit: {e}"));
                    None
                }
            },
            None => None,
        };
        let mut caller = Caller {
            platform: &platform,
            tenant: &tenant,
            prefix: &prefix,
            sent: 0,
        };
        let (objects, problems) = setup::make_objects(&mut caller).await;
        report.skipped.extend(objects.skipped.iter().cloned());
        report
            .findings
            .extend(problems.into_iter().map(WitnessFinding::SetUp));
        let open = Settle {
            caller,
            objects: &objects,
            subs: &subs,
            tail: tail.as_ref(),
            audit: audit.as_ref(),
        }
        .wait(SET_UP_WITHIN)
        .await;
        for what in open {
            report.findings.push(WitnessFinding::SetUp(format!(
                "not settled within {SET_UP_WITHIN:?}: {what}"
            )));
        }
        let mut live = Live {
            platform,
            tenant,
            prefix,
            subs,
            baseline: Vec::new(),
            tail,
            cut_ms: 0,
            pg,
            tables: Vec::new(),
            reads: Vec::new(),
            mocks: Vec::new(),
        };
        live.fingerprint(eco, &objects, report).await;
        live
    }

    async fn fingerprint(
        &mut self,
        eco: &Ecosystem,
        objects: &Objects,
        report: &mut WitnessReport,
    ) {
        self.baseline = self.subs.iter().map(|(_, s)| s.events().len()).collect();
        self.cut_ms = match &self.tail {
            Some(tail) => match tail.now_ms().await {
                Ok(ms) => ms,
                Err(e) => {
                    report
                        .findings
                        .push(WitnessFinding::SetUp(format!("reading Redis's clock: {e}")));
                    u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0)
                }
            },
            None => 0,
        };
        if self.tail.is_some() {
            report
                .watched
                .push("every queue's streams and the event stream".into());
        }
        let http = self.platform.http().clone();
        for c in eco.components().filter(|c| c.kind() == Kind::Service) {
            let Some(admin) = c.admin_url() else { continue };
            match journal(&http, &admin).await {
                Ok(entries) => {
                    let last = entries.iter().map(|e| e.seq).max();
                    self.mocks
                        .push((c.name().to_owned(), admin, last.unwrap_or(0)));
                }
                Err(e) => report
                    .skipped
                    .push(format!("the {} mock's calls ({e})", c.name())),
            }
        }
        if !self.mocks.is_empty() {
            let names: Vec<&str> = self.mocks.iter().map(|m| m.0.as_str()).collect();
            report
                .watched
                .push(format!("the calls of the mocks {}", names.join(", ")));
        }
        if let Some(pg) = &self.pg {
            for table in &crate::contract::active().stores.tenant_tables {
                let print = table_print(pg, table, &self.tenant.id).await;
                self.tables.push((table.clone(), print));
            }
            report
                .watched
                .push(format!("{} tables of the contract", self.tables.len()));
        }
        for read in &objects.reads {
            let answer = self.read(read).await;
            self.reads.push((read.clone(), answer));
        }
        let what: Vec<&str> = objects.reads.iter().map(|r| r.what).collect();
        report
            .watched
            .push(format!("the API reads of its {}", what.join(", ")));
    }

    async fn read(&self, read: &Read) -> Result<Value, String> {
        let answer = self
            .platform
            .client(&self.tenant, &read.app)
            .get(read.service, &read.path)
            .await
            .map_err(|e| error_chain(&e))?;
        Ok(serde_json::json!({ "status": answer.status, "body": answer.body }))
    }
}

/// `md5` of the rows of `tenant` in `table` (none when it has none).
async fn table_print(
    pg: &sqlx::PgPool,
    table: &str,
    tenant: &str,
) -> Result<Option<String>, String> {
    let table = qualified(table).map_err(|e| format!("contract `stores.tenant-tables`: {e}"))?;
    sqlx::query_scalar(&format!(
        "SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM {table} t WHERE tenant_id = $1"
    ))
    .bind(tenant)
    .fetch_one(pg)
    .await
    .map_err(|e| format!("reading {table}: {}", error_chain(&e)))
}

/// A mock's journal (`GET <admin>/journal`), in the mocks' own type.
async fn journal(
    http: &reqwest::Client,
    admin: &str,
) -> Result<Vec<tekup_mocks::RecordedRequest>, String> {
    let url = format!("{admin}/journal");
    let response = http
        .get(&url)
        .send()
        .await
        .map_err(|e| format!("GET {url}: {}", error_chain(&e)))?;
    response
        .json()
        .await
        .map_err(|e| format!("GET {url}: not a journal: {}", error_chain(&e)))
}

fn redis_client(eco: &Ecosystem) -> Result<redis::Client, String> {
    let url = eco
        .components()
        .find(|c| c.kind() == Kind::Redis)
        .and_then(|c| c.url())
        .ok_or("the ecosystem exposes no Redis")?;
    redis::Client::open(url).map_err(|e| format!("the Redis URL: {}", error_chain(&e)))
}

/// A value on one line, cut at 300 characters.
fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.len() <= 300 {
        return text;
    }
    let mut end = 300;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_names_what_it_watched_skipped_and_found() {
        let report = WitnessReport {
            tenant: "witness-x-1".into(),
            watched: vec!["6 rooms (every app's)".into()],
            skipped: vec!["the tables (no database access: none)".into()],
            findings: vec![
                WitnessFinding::Frame {
                    app: "crm-web".into(),
                    event_type: "LEAD_CREATED".into(),
                    tenant: "acme-1".into(),
                    id: "e1".into(),
                    own: false,
                },
                WitnessFinding::Changed {
                    what: "rows in flow.leads".into(),
                    before: "a".into(),
                    after: "b".into(),
                },
            ],
        };
        assert!(!report.holds());
        let text = report.describe(1);
        assert!(
            text.starts_with("witness tenant witness-x-1: 2 finding(s)"),
            "{text}"
        );
        assert!(text.contains("watched: 6 rooms"), "{text}");
        assert!(
            text.contains("not watched: the tables (no database access"),
            "{text}"
        );
        assert!(
            text.contains(
                "LEAK: the witness's crm-web connection received LEAD_CREATED e1 of tenant acme-1"
            ),
            "{text}"
        );
        assert!(text.contains("… and 1 more"), "{text}");
    }

    #[test]
    fn stream_ids_give_their_milliseconds() {
        assert_eq!(tail::stream_ms("1700000000123-4"), 1_700_000_000_123);
        assert_eq!(tail::stream_ms("junk"), 0);
    }
}
