//! The load profiles as goose scenarios.
//!
//! Users send requests back to back (no think time): a profile measures
//! what the platform sustains, and `--users` sets the concurrency. Every
//! request carries its user's tenant headers and the app the permission
//! matrix allows for it (flow-web on flow-api, crm-web on crm-api), and is
//! named by its route (`GET /leads/{id}`), so goose's report groups it
//! with its kind rather than per id.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use goose::prelude::*;
use serde_json::{json, Value};

use super::events::Watch;
use crate::net::ClientTls;
use crate::platform::TenantKey as Tenant;

/// A load profile: what each user does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Profile {
    /// `POST /leads` on flow-api; queue latency from the gateway.
    LeadCreation,
    /// `POST /contacts/sync` on crm-api, ten contacts a request.
    ContactSync,
    /// Reads and writes across flow-api and crm-api.
    Mixed,
    /// WebSocket clients on the gateway receive LEAD_CREATED while leads
    /// are created; delivery latency and missed deliveries.
    WsFanout,
}

impl Profile {
    pub const ALL: [Profile; 4] = [
        Profile::LeadCreation,
        Profile::ContactSync,
        Profile::Mixed,
        Profile::WsFanout,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Profile::LeadCreation => "lead-creation",
            Profile::ContactSync => "contact-sync",
            Profile::Mixed => "mixed",
            Profile::WsFanout => "ws-fanout",
        }
    }

    /// Whether it sends requests to crm-api.
    pub fn needs_crm(self) -> bool {
        matches!(self, Profile::ContactSync | Profile::Mixed)
    }

    /// Whether it needs the gateway (ws-fanout), or uses it to measure the
    /// queue latency of the leads it creates when there is one.
    pub fn needs_gateway(self) -> bool {
        self == Profile::WsFanout
    }

    /// Whether it creates leads (and so has a queue latency to measure).
    pub fn creates_leads(self) -> bool {
        self != Profile::ContactSync
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Profile {
    type Err = super::LoadError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Profile::ALL
            .into_iter()
            .find(|p| p.name() == s.trim())
            .ok_or_else(|| super::LoadError::UnknownProfile(s.to_owned()))
    }
}

/// What every user of a run shares.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub(crate) flow: String,
    pub(crate) crm: Option<String>,
    pub(crate) tenants: Vec<Tenant>,
    pub(crate) watch: Option<Arc<Watch>>,
    /// Each tenant's last created lead, for `GET /leads/{id}`.
    last_lead: Vec<Mutex<Option<String>>>,
    pub(crate) requests: AtomicU64,
    pub(crate) errors: AtomicU64,
    /// The first few failures, with status and body, for the report.
    pub(crate) samples: Mutex<Vec<String>>,
    sequence: AtomicU64,
}

/// Failures kept as samples.
const SAMPLES: usize = 5;

impl Ctx {
    pub(crate) fn new(
        flow: String,
        crm: Option<String>,
        tenants: Vec<Tenant>,
        watch: Option<Arc<Watch>>,
    ) -> Self {
        Self {
            last_lead: tenants.iter().map(|_| Mutex::new(None)).collect(),
            flow: flow.trim_end_matches('/').to_owned(),
            crm: crm.map(|c| c.trim_end_matches('/').to_owned()),
            tenants,
            watch,
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            samples: Mutex::new(Vec::new()),
            sequence: AtomicU64::new(0),
        }
    }

    fn sample(&self, text: String) {
        let mut samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        if samples.len() < SAMPLES {
            samples.push(text);
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    CreateLead,
    ListLeads,
    GetLead,
    ListContacts,
    SyncContacts,
}

/// Every load user's HTTP client: the harness's TLS settings, goose's
/// request timeout.
const USER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The goose scenario of `profile`; each user's client is built from `tls`
/// when it starts, so `https://` targets get the run's CA and client
/// certificate.
pub(crate) fn scenario(
    profile: Profile,
    ctx: &Arc<Ctx>,
    tls: &ClientTls,
) -> Result<Scenario, GooseError> {
    let weighted: &[(Kind, usize)] = match profile {
        Profile::LeadCreation | Profile::WsFanout => &[(Kind::CreateLead, 1)],
        Profile::ContactSync => &[(Kind::SyncContacts, 1)],
        Profile::Mixed => &[
            (Kind::CreateLead, 2),
            (Kind::ListLeads, 3),
            (Kind::GetLead, 2),
            (Kind::ListContacts, 2),
            (Kind::SyncContacts, 1),
        ],
    };
    let tls = tls.clone();
    let client: TransactionFunction = Arc::new(move |user| {
        let builder = tls
            .goose_http()
            .timeout(USER_TIMEOUT)
            .user_agent("tekup-harness load");
        Box::pin(async move { user.set_client_builder(builder).await.map_err(Box::new) })
    });
    let mut scenario =
        Scenario::new(profile.name()).register_transaction(Transaction::new(client).set_on_start());
    for &(kind, weight) in weighted {
        let shared = Arc::clone(ctx);
        let function: TransactionFunction = Arc::new(move |user| {
            let ctx = Arc::clone(&shared);
            Box::pin(async move { perform(kind, user, &ctx).await })
        });
        scenario = scenario.register_transaction(Transaction::new(function).set_weight(weight)?);
    }
    Ok(scenario)
}

async fn perform(kind: Kind, user: &mut GooseUser, ctx: &Ctx) -> TransactionResult {
    let index = user.weighted_users_index % ctx.tenants.len().max(1);
    let n = ctx.sequence.fetch_add(1, Ordering::Relaxed);
    let crm = ctx.crm.as_deref().unwrap_or_default();
    match kind {
        Kind::CreateLead => {
            let tenant = &ctx.tenants[index].id;
            let body = json!({
                "firstName": "Load",
                "lastName": format!("User {n}"),
                "company": "Load Test",
                "email": format!("lead-{n}@{tenant}.example"),
            });
            let url = format!("{}/leads", ctx.flow);
            let answer = call(user, ctx, index, Post, &url, "/leads", Some(body)).await?;
            if let Some(id) = answer.as_ref().and_then(|v| v["id"].as_str()) {
                if let Some(watch) = &ctx.watch {
                    watch.created(id, Instant::now());
                }
                *ctx.last_lead[index]
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(id.to_owned());
            }
        }
        Kind::ListLeads => {
            let url = format!("{}/leads?limit=20", ctx.flow);
            call(user, ctx, index, Get, &url, "/leads", None).await?;
        }
        Kind::GetLead => {
            let last = ctx.last_lead[index]
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            // Before the user's first lead, read the list instead.
            let (url, name) = match last {
                Some(id) => (format!("{}/leads/{id}", ctx.flow), "/leads/{id}"),
                None => (format!("{}/leads?limit=20", ctx.flow), "/leads"),
            };
            call(user, ctx, index, Get, &url, name, None).await?;
        }
        Kind::ListContacts => {
            let url = format!("{crm}/contacts?limit=20");
            call(user, ctx, index, Get, &url, "/contacts", None).await?;
        }
        Kind::SyncContacts => {
            // Fifty addresses per user, ten a request: creates, then updates.
            let tenant = &ctx.tenants[index].id;
            let contacts: Vec<Value> = (0..10)
                .map(|i| {
                    let slot = (n * 10 + i) % 50;
                    json!({
                        "email": format!("contact-{slot}@{tenant}.example"),
                        "firstName": "Sync",
                        "lastName": format!("Contact {slot}"),
                        "company": format!("Batch {n}"),
                        "source": "load",
                    })
                })
                .collect();
            let url = format!("{crm}/contacts/sync");
            let body = json!({ "contacts": contacts });
            call(user, ctx, index, Post, &url, "/contacts/sync", Some(body)).await?;
        }
    }
    Ok(())
}

use GooseMethod::{Get, Post};

/// Sends one request as the user's tenant (flow-web on flow-api, crm-web on
/// crm-api); the answer's JSON body when it succeeded.
async fn call(
    user: &mut GooseUser,
    ctx: &Ctx,
    index: usize,
    method: GooseMethod,
    url: &str,
    name: &str,
    body: Option<Value>,
) -> Result<Option<Value>, Box<TransactionError>> {
    let tenant = &ctx.tenants[index];
    let app = if url.starts_with(&ctx.flow) {
        "flow-web"
    } else {
        "crm-web"
    };
    let mut builder = user
        .get_request_builder(&method, url)?
        .header("x-tenant-key", &tenant.key)
        .header("x-tenant-id", &tenant.id)
        .header("x-source-app", app);
    if let Some(body) = &body {
        builder = builder.json(body);
    }
    let request = GooseRequest::builder()
        .method(method)
        .path(url)
        .name(name)
        .set_request_builder(builder)
        .build();
    let goose = user.request(request).await?;
    ctx.requests.fetch_add(1, Ordering::Relaxed);
    let success = goose.request.success;
    if !success {
        ctx.errors.fetch_add(1, Ordering::Relaxed);
    }
    match goose.response {
        Ok(response) if success => Ok(response.json::<Value>().await.ok()),
        Ok(response) => {
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            ctx.sample(format!(
                "{} {name}: {status} {}",
                goose.request.raw.method,
                crate::report::text::truncate(&text, 300)
            ));
            Ok(None)
        }
        Err(e) => {
            ctx.sample(format!(
                "{} {name}: {}",
                goose.request.raw.method,
                crate::env::error_chain(&e)
            ));
            Ok(None)
        }
    }
}
