//! Making the witness's objects and waiting until the platform is done
//! with them.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use super::tail::Tail;
use crate::env::error_chain;
use crate::invariants::audit::{Audit, Delivery, Rooms};
use crate::platform::{Platform, Subscriber, TenantKey};

/// One read of the witness's objects through the API: its answer is part
/// of the fingerprint.
#[derive(Debug, Clone)]
pub(super) struct Read {
    /// For messages: `lead`, `contacts`, `deals`.
    pub(super) what: &'static str,
    pub(super) app: String,
    pub(super) service: &'static str,
    pub(super) path: String,
}

/// What the witness made.
#[derive(Debug, Default)]
pub(super) struct Objects {
    /// The lead's id, when the contract lets an app make one.
    pub(super) lead: Option<String>,
    pub(super) reads: Vec<Read>,
    /// What could not be made, because no app of the contract may.
    pub(super) skipped: Vec<String>,
}

/// The first app of the contract holding `permission` on `service`.
fn app_for(service: &str, permission: &str) -> Option<String> {
    let contract = crate::contract::active();
    contract
        .apps
        .iter()
        .find(|app| contract.permissions_of(app, service).contains(permission))
        .cloned()
}

/// Requests as the witness, each with a correlation id `<prefix>-<n>`.
#[derive(Debug)]
pub(super) struct Caller<'a> {
    pub(super) platform: &'a Platform,
    pub(super) tenant: &'a TenantKey,
    pub(super) prefix: &'a str,
    pub(super) sent: usize,
}

impl Caller<'_> {
    /// `method path` on `service` as `app`: the status and the JSON body.
    pub(super) async fn call(
        &mut self,
        app: &str,
        method: Method,
        service: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), String> {
        self.sent += 1;
        let header = &crate::contract::active().headers.correlation_id;
        let mut request = self
            .platform
            .client(self.tenant, app)
            .request(method.clone(), service, path)
            .map_err(|e| error_chain(&e))?
            .header(header.as_str(), format!("{}-{}", self.prefix, self.sent));
        if let Some(body) = body {
            request = request.json(body);
        }
        let what = format!("{method} {service} {path} as {app}");
        let response = request
            .send()
            .await
            .map_err(|e| format!("{what}: {}", error_chain(&e)))?;
        let status = response.status().as_u16();
        let text = response
            .text()
            .await
            .map_err(|e| format!("{what}: {}", error_chain(&e)))?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }

    /// `POST` of a new object: its id, or why not.
    async fn create(
        &mut self,
        app: &str,
        service: &str,
        path: &str,
        body: &Value,
    ) -> Result<String, String> {
        let (status, answer) = self
            .call(app, Method::POST, service, path, Some(body))
            .await?;
        match answer["id"].as_str() {
            Some(id) if (200..300).contains(&status) => Ok(id.to_owned()),
            _ => Err(format!(
                "POST {service} {path} as {app} answered {status}: {}",
                super::short(&answer)
            )),
        }
    }
}

/// Makes a lead, a contact and a deal on that contact, as the first apps
/// of the contract allowed to; refusals are returned as problems.
pub(super) async fn make_objects(caller: &mut Caller<'_>) -> (Objects, Vec<String>) {
    let mut objects = Objects::default();
    let mut problems = Vec::new();
    let tag = &caller.tenant.id;
    let made = |what: &str, service: &str, write: &str, read: &str| match (
        app_for(service, write),
        app_for(service, read),
    ) {
        (Some(w), Some(r)) => Ok((w, r)),
        _ => Err(format!(
            "{what}: no app of the contract holds {write} and {read} on {service}"
        )),
    };
    match made("a lead", "flow-api", "write:leads", "read:leads") {
        Ok((write, read)) => {
            let body = json!({ "firstName": "Witness", "lastName": "Tenant", "email": format!("lead@{tag}.witness.test") });
            match caller.create(&write, "flow-api", "/leads", &body).await {
                Ok(id) => {
                    objects.reads.push(Read {
                        what: "lead",
                        app: read,
                        service: "flow-api",
                        path: format!("/leads/{id}"),
                    });
                    objects.lead = Some(id);
                }
                Err(e) => problems.push(e),
            }
        }
        Err(skip) => objects.skipped.push(skip),
    }
    let mut contact = None;
    match made("a contact", "crm-api", "write:contacts", "read:contacts") {
        Ok((write, read)) => {
            let body =
                json!({ "email": format!("contact@{tag}.witness.test"), "firstName": "Witness" });
            match caller.create(&write, "crm-api", "/contacts", &body).await {
                Ok(id) => contact = Some(id),
                Err(e) => problems.push(e),
            }
            objects.reads.push(Read {
                what: "contacts",
                app: read,
                service: "crm-api",
                path: "/contacts".into(),
            });
        }
        Err(skip) => objects.skipped.push(skip),
    }
    match made("a deal", "crm-api", "write:deals", "read:deals") {
        Ok((write, read)) => {
            let mut body = json!({ "title": "Witness deal", "amount": 1000, "currency": "eur" });
            if let Some(c) = &contact {
                body["contactId"] = json!(c);
            }
            if let Err(e) = caller.create(&write, "crm-api", "/deals", &body).await {
                problems.push(e);
            }
            objects.reads.push(Read {
                what: "deals",
                app: read,
                service: "crm-api",
                path: "/deals".into(),
            });
        }
        Err(skip) => objects.skipped.push(skip),
    }
    (objects, problems)
}

/// What the set-up waits for, with the things it reads.
pub(super) struct Settle<'a> {
    pub(super) caller: Caller<'a>,
    pub(super) objects: &'a Objects,
    pub(super) subs: &'a [(String, Subscriber)],
    pub(super) tail: Option<&'a Tail>,
    pub(super) audit: Option<&'a Audit>,
}

impl Settle<'_> {
    /// Waits until nothing is left unsettled or `within` has passed;
    /// returns what is still unsettled then (empty when all settled).
    pub(super) async fn wait(&mut self, within: Duration) -> Vec<String> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(50);
        loop {
            let open = self.unsettled().await;
            if open.is_empty() || started.elapsed() >= within {
                return open;
            }
            tokio::time::sleep(pause.min(within.saturating_sub(started.elapsed()))).await;
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }

    /// Everything not settled yet, one line each.
    async fn unsettled(&mut self) -> Vec<String> {
        let mut open = Vec::new();
        let contract = crate::contract::active();
        // The lead is processed: it names its contact.
        let lead_read = self.objects.reads.iter().find(|r| r.what == "lead");
        if let (Some(lead), Some(read)) = (&self.objects.lead, lead_read) {
            match self
                .caller
                .call(&read.app, Method::GET, read.service, &read.path, None)
                .await
            {
                Ok((200, body)) if !body["contactId"].is_null() => {}
                Ok((status, body)) => open.push(format!(
                    "lead {lead} is not processed (GET {} answers {status}: {})",
                    read.path,
                    super::short(&body)
                )),
                Err(e) => open.push(e),
            }
            // Its LEAD_CREATED reached every room the contract routes it to.
            if contract.events.types.contains_key("LEAD_CREATED") {
                for app in contract.routes_for("LEAD_CREATED") {
                    let got = self
                        .frames(app)
                        .iter()
                        .any(|e| e["type"] == "LEAD_CREATED" && e["data"]["id"] == lead.as_str());
                    if !got {
                        open.push(format!(
                            "the witness's {app} connection has not received LEAD_CREATED about its lead {lead}"
                        ));
                    }
                }
            }
        }
        if let Some(tail) = self.tail {
            for entry in tail.seen() {
                if entry.job {
                    // Handled: gone from its live stream.
                    if entry.stream.ends_with(&contract.queues.dead_suffix) {
                        continue;
                    }
                    match tail.still_there(&entry).await {
                        Ok(false) => {}
                        Ok(true) => open.push(format!(
                            "its {} job {} is still on {}",
                            entry.kind, entry.id, entry.stream
                        )),
                        Err(e) => open.push(format!("reading {}: {e}", entry.stream)),
                    }
                } else {
                    for app in contract.routes_for(&entry.kind) {
                        if !self
                            .frames(app)
                            .iter()
                            .any(|e| e["id"] == entry.id.as_str())
                        {
                            open.push(format!(
                                "its {} {} was published and has not reached its {app} connection",
                                entry.kind, entry.id
                            ));
                        }
                    }
                }
            }
        }
        if let Some(audit) = self.audit {
            let tenant = self.caller.tenant.id.clone();
            let verdict = audit.check(&[tenant], Rooms::All, &self.deliveries()).await;
            open.extend(verdict.findings.iter().map(|f| format!("audit: {f}")));
        }
        open
    }

    fn frames(&self, app: &str) -> Vec<Value> {
        self.subs
            .iter()
            .filter(|(a, _)| a == app)
            .flat_map(|(_, s)| s.events())
            .collect()
    }

    /// What the witness's connections received, as deliveries to its rooms.
    fn deliveries(&self) -> Vec<Delivery> {
        deliveries(&self.caller.tenant.id, self.subs)
    }
}

/// Every event `subs` (of `tenant`) received, as deliveries to their rooms.
pub(super) fn deliveries(tenant: &str, subs: &[(String, Subscriber)]) -> Vec<Delivery> {
    subs.iter()
        .flat_map(|(app, sub)| {
            sub.events().into_iter().map(move |e| Delivery {
                tenant: tenant.to_owned(),
                app: app.clone(),
                event: e["id"].as_str().unwrap_or_default().to_owned(),
                event_type: e["type"].as_str().unwrap_or_default().to_owned(),
            })
        })
        .collect()
}
