//! Running a plan against a live ecosystem: fresh tenants, every request
//! with its check, then the invariants at the end: the stores settled,
//! every accepted lead, contact, deal and incident in the table the
//! contract names for it, the clients' frames held to the model and, when
//! all that holds, the gateway's audit held to what the clients received
//! (a case already failing is not: the audit would wait out its deadline
//! on what is already broken). Only the rooms the case had clients in are
//! held to "no row without a delivery": a row elsewhere means a delivery
//! to a connection outside the case, which only a leak to another tenant
//! makes; the run's witness sees that leak, and the case's verdict stays a
//! function of the case (so its minimal scenario replays).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{json, Value};

use super::check::check_answer;
use super::events;
use super::plan::{tenant_var, Call, Creds, Plan, Step, LEAD_APP};
use crate::env::{error_chain, Ecosystem};
use crate::invariants::audit::{check_stored, store_for, AcceptedWrite, Audit, Delivery, Rooms};
use crate::invariants::{AcceptedLead, Checker, LeadTraces, Ledger, Patience};
use crate::platform::Platform;
use crate::scenario::run::queue::enqueue_job;
use crate::scenario::run::ws::{Conn, Observer, Opener};
use crate::scenario::run::Clock;
use crate::scenario::vars::map_strings;

/// How long the end of a case waits, at most.
#[derive(Debug, Clone, Copy)]
pub struct Waits {
    /// For the platform to finish its work (queues drained, leads processed).
    pub settle: Duration,
    /// For each expected event to reach its clients.
    pub events: Duration,
    /// Of quiet after the expected events, in which nothing else may come.
    pub quiet: Duration,
}

/// Why a case failed: where (the plan step, if a request's check) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseFailure {
    pub step: Option<usize>,
    pub findings: Vec<String>,
}

/// Runs plans on one ecosystem; every case gets fresh tenants.
#[derive(Debug)]
pub struct Executor {
    platform: Platform,
    checker: Checker,
    redis: redis::aio::MultiplexedConnection,
    gateway: String,
    waits: Waits,
    audit: Audit,
    /// The tables of leads, contacts, deals and incidents, from the contract.
    stores: [String; 4],
}

/// The kinds of object a case makes, as the contract's tables are named.
const NOUNS: [&str; 4] = ["leads", "contacts", "deals", "incidents"];

/// Values a case binds: tenants' ids and keys, ids the platform assigned.
#[derive(Debug, Default)]
pub(crate) struct Vars(pub(crate) BTreeMap<String, String>);

impl Vars {
    pub(crate) fn get(&self, name: &str) -> Result<&str, String> {
        self.0
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| format!("`${{{name}}}` is not bound (the plan refers to it too early)"))
    }

    /// Expands every `${name}` of a text.
    pub(crate) fn text(&self, text: &str) -> Result<String, String> {
        let mut out = String::new();
        let mut rest = text;
        while let Some(at) = rest.find("${") {
            out.push_str(&rest[..at]);
            let end = rest[at..]
                .find('}')
                .ok_or_else(|| format!("unterminated reference in `{text}`"))?;
            out.push_str(self.get(&rest[at + 2..at + end])?);
            rest = &rest[at + end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    fn json(&self, value: &Value) -> Result<Value, String> {
        map_strings(value, &|s| Ok(Value::String(self.text(s)?)))
    }

    /// The variable whose value is `id` (`lead-3`), for messages.
    pub(crate) fn name_of(&self, id: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, v)| v.as_str() == id && !k.ends_with(".key"))
            .map(|(k, _)| k.as_str())
    }
}

impl Executor {
    /// An executor on a running ecosystem (the process or docker runtime:
    /// the end-of-case checks read Postgres and Redis).
    pub async fn new(eco: &Ecosystem, waits: Waits) -> Result<Executor, String> {
        let platform = Platform::from_ecosystem(eco).map_err(|e| error_chain(&e))?;
        let checker = Checker::new(eco, platform.clone()).await?;
        let redis = eco
            .redis()
            .await
            .map_err(|e| format!("redelivering jobs needs Redis: {}", error_chain(&e)))?;
        let gateway = platform
            .url("gateway")
            .map_err(|e| error_chain(&e))?
            .to_owned();
        let contract = crate::contract::active();
        let audit = Audit::new(checker.pool().clone(), contract)?;
        let store = |noun| store_for(contract, noun);
        let stores = [
            store(NOUNS[0])?,
            store(NOUNS[1])?,
            store(NOUNS[2])?,
            store(NOUNS[3])?,
        ];
        Ok(Executor {
            platform,
            checker,
            redis,
            gateway,
            waits,
            audit,
            stores,
        })
    }

    /// Runs one case: fresh tenants, the steps (stopping at the first that
    /// fails its check), then the invariants.
    pub async fn run(&self, plan: &Plan, label: &str) -> Result<(), CaseFailure> {
        let mut vars = Vars::default();
        for t in 0..plan.tenants {
            let made = self
                .platform
                .create_tenant(&format!("prop-{}", tenant_var(t)))
                .await
                .map_err(|e| setup(format!("creating tenant t{t}: {}", error_chain(&e))))?;
            vars.0.insert(tenant_var(t), made.id);
            vars.0.insert(format!("{}.key", tenant_var(t)), made.key);
        }
        let ledger = Ledger::new();
        let mut conns = Vec::new();
        for (i, step) in plan.steps.iter().enumerate() {
            let result = match step {
                Step::Http { what, call, expect } => {
                    // A trace per request; what it creates is followed in it.
                    let trace = self.checker.traces().map(LeadTraces::begin);
                    let traceparent = trace.as_ref().map(|(tp, _)| tp.as_str());
                    let answer = self
                        .send(call, &vars, &format!("{label}-{i}"), traceparent)
                        .await;
                    if let (Ok((201, body)), Some((_, trace))) = (&answer, &trace) {
                        if let Some(id) = body["id"].as_str() {
                            // The request that created it (a later read of
                            // it answers the same id in another trace).
                            vars.0.entry(trace_var(id)).or_insert_with(|| trace.clone());
                        }
                    }
                    answer.and_then(|(status, body)| {
                        let result = check_answer(expect, status, &body, &mut vars);
                        result.map_err(|e| format!("{what}: {} {}: {e}", call.method, call.path))
                    })
                }
                Step::Subscribe { conn } => {
                    let c = &plan.conns[*conn];
                    self.subscribe(c.tenant, c.app, &vars)
                        .await
                        .map(|opened| conns.push(opened))
                        .map_err(|e| {
                            format!("subscribing c{conn} as (t{}, {}): {e}", c.tenant, c.app)
                        })
                }
                Step::Redeliver { lead } => {
                    self.redeliver(plan, *lead, &vars, &format!("{label}-{i}"))
                        .await
                }
            };
            if let Err(finding) = result {
                return Err(CaseFailure {
                    step: Some(i),
                    findings: vec![finding],
                });
            }
        }
        for (n, lead) in plan.leads.iter().enumerate() {
            let (tenant, id) = (
                vars.get(&tenant_var(lead.tenant)),
                vars.get(&format!("lead-{n}")),
            );
            if let (Ok(tenant), Ok(id)) = (tenant, id) {
                ledger.accepted(AcceptedLead {
                    tenant: tenant.to_owned(),
                    id: id
                        .parse()
                        .map_err(|_| setup(format!("lead-{n} has no UUID: {id}")))?,
                    email: lead.email.clone(),
                    trace: vars.get(&trace_var(id)).ok().map(str::to_owned),
                });
            }
        }
        let verdict = self
            .checker
            .settle(&ledger.accepted_leads(), self.waits.settle)
            .await;
        let mut findings: Vec<String> = verdict
            .findings
            .iter()
            .map(|f| name_ids(&f.to_string(), &vars))
            .collect();
        let stored = check_stored(self.checker.pool(), &self.accepted(plan, &vars)).await;
        findings.extend(stored.iter().map(|f| name_ids(&f.to_string(), &vars)));
        findings.extend(events::check(plan, &conns, &vars, self.waits).await);
        if findings.is_empty() {
            findings.extend(self.check_audit(plan, &conns, &vars).await);
        }
        if findings.is_empty() {
            Ok(())
        } else {
            Err(CaseFailure {
                step: None,
                findings,
            })
        }
    }

    /// Every lead, contact, deal and incident the platform accepted in the
    /// case (its id is bound), with its tenant and table.
    fn accepted(&self, plan: &Plan, vars: &Vars) -> Vec<AcceptedWrite> {
        let owners: [Vec<usize>; 4] = [
            plan.leads.iter().map(|l| l.tenant).collect(),
            plan.contacts.iter().map(|c| c.0).collect(),
            plan.deals.clone(),
            plan.incidents.clone(),
        ];
        let vars_of = ["lead", "contact", "deal", "incident"];
        let mut writes = Vec::new();
        for ((owners, table), var) in owners.iter().zip(&self.stores).zip(vars_of) {
            for (n, &owner) in owners.iter().enumerate() {
                let what = format!("{var}-{n}");
                if let (Ok(id), Ok(tenant)) = (vars.get(&what), vars.get(&tenant_var(owner))) {
                    writes.push(AcceptedWrite {
                        what: what.clone(),
                        tenant: tenant.to_owned(),
                        id: id.to_owned(),
                        table: table.clone(),
                    });
                }
            }
        }
        writes
    }

    /// The gateway's audit of the case's tenants against what its clients
    /// received, settled within the events' wait.
    async fn check_audit(&self, plan: &Plan, conns: &[Conn], vars: &Vars) -> Vec<String> {
        let tenants: Vec<String> = (0..plan.tenants)
            .filter_map(|t| vars.get(&tenant_var(t)).ok().map(str::to_owned))
            .collect();
        // Each client's room: (its tenant's id, its app).
        let rooms: Vec<(String, String)> = plan
            .conns
            .iter()
            .take(conns.len())
            .map(|c| {
                let tenant = vars.get(&tenant_var(c.tenant)).unwrap_or_default();
                (tenant.to_owned(), c.app.to_owned())
            })
            .collect();
        let deliveries = || {
            let mut out = Vec::new();
            for ((tenant, app), conn) in rooms.iter().zip(conns) {
                for frame in conn.frames().iter().filter(|f| f["type"] == "event") {
                    let event = &frame["event"];
                    out.push(Delivery {
                        tenant: tenant.clone(),
                        app: app.clone(),
                        event: event["id"].as_str().unwrap_or_default().to_owned(),
                        event_type: event["type"].as_str().unwrap_or_default().to_owned(),
                    });
                }
            }
            out
        };
        let subscribed = rooms.iter().cloned().collect();
        let verdict = self
            .audit
            .settle(
                &tenants,
                Rooms::Subscribed(&subscribed),
                deliveries,
                &mut Patience::new(self.waits.events),
            )
            .await;
        verdict
            .findings
            .iter()
            .map(|f| name_ids(&f.to_string(), vars))
            .collect()
    }

    async fn send(
        &self,
        call: &Call,
        vars: &Vars,
        correlation: &str,
        traceparent: Option<&str>,
    ) -> Result<(u16, Value), String> {
        let url = format!(
            "{}{}",
            self.platform
                .url(call.service)
                .map_err(|e| error_chain(&e))?,
            vars.text(&call.path)?
        );
        let mut headers = HeaderMap::new();
        let mut put = |name: &str, value: &str| -> Result<(), String> {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| format!("header {name}: {e}"))?;
            let value = HeaderValue::from_str(value).map_err(|e| format!("header {name}: {e}"))?;
            headers.insert(name, value);
            Ok(())
        };
        put("x-correlation-id", correlation)?;
        if let Some(tp) = traceparent {
            put("traceparent", tp)?;
        }
        if let Creds::As { tenant, app } = &call.creds {
            put(
                "x-tenant-key",
                vars.get(&format!("{}.key", tenant_var(*tenant)))?,
            )?;
            put("x-tenant-id", vars.get(&tenant_var(*tenant))?)?;
            put("x-source-app", app)?;
        }
        for (name, value) in &call.headers {
            put(name, &vars.text(value)?)?;
        }
        let method =
            reqwest::Method::from_bytes(call.method.as_bytes()).map_err(|e| e.to_string())?;
        let mut request = self.platform.http().request(method, &url).headers(headers);
        if let Some(body) = &call.json {
            request = request.json(&vars.json(body)?);
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("{} {url} got no answer: {}", call.method, error_chain(&e)))?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(|e| error_chain(&e))?;
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Ok((status, body))
    }

    async fn subscribe(&self, tenant: usize, app: &str, vars: &Vars) -> Result<Conn, String> {
        let observer = Observer {
            name: format!("t{tenant}-{app}"),
            messages: Arc::new(Mutex::new(Vec::new())),
            changed: Arc::new(tokio::sync::Notify::new()),
            clock: Clock::start(),
        };
        Conn::open(
            self.platform.tls(),
            &self.gateway,
            Opener {
                tenant_id: vars.get(&tenant_var(tenant))?,
                key: vars.get(&format!("{}.key", tenant_var(tenant)))?,
                app,
                traceparent: None,
            },
            Duration::from_secs(10),
            observer,
        )
        .await
    }

    /// Hands lead `lead`'s processing job to the workers again, as the
    /// scenario step `redis: enqueue` does (the same function).
    async fn redeliver(
        &self,
        plan: &Plan,
        lead: usize,
        vars: &Vars,
        correlation: &str,
    ) -> Result<(), String> {
        let tenant = vars.get(&tenant_var(plan.leads[lead].tenant))?;
        let payload = json!({ "leadId": vars.get(&format!("lead-{lead}"))?, "originApp": LEAD_APP, "notifyVoice": false });
        let mut redis = self.redis.clone();
        enqueue_job(
            &mut redis,
            "lead-processing",
            "process-lead",
            tenant,
            payload,
            correlation,
            None,
        )
        .await
        .map(drop)
        .map_err(|e| format!("redelivering lead-{lead}'s job: {e}"))
    }
}

fn setup(message: String) -> CaseFailure {
    CaseFailure {
        step: None,
        findings: vec![format!("the case could not run: {message}")],
    }
}

/// A finding's text with the case's ids followed by their names
/// (`lead 3f… (lead-0) of prop-t0-… (t0)`).
fn name_ids(text: &str, vars: &Vars) -> String {
    let mut out = text.to_owned();
    for (name, value) in &vars.0 {
        if !name.ends_with(".key") && out.contains(value.as_str()) {
            out = out.replace(value.as_str(), &format!("{value} ({name})"));
        }
    }
    out
}
/// The variable holding the trace of the request that created object `id`.
fn trace_var(id: &str) -> String {
    format!("trace:{id}")
}
