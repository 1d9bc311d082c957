//! The model: what each tenant owns and should see, and the plan it makes
//! of a sequence of operations.
//!
//! Planning is pure: from the operations alone it decides every request,
//! the answer it must get and what the tenant must see afterwards. Values
//! only the platform knows (the ids it assigns, tenants' ids and keys) are
//! named like a scenario names them (`${lead-0}`, `${t1.key}`): the
//! executor binds them as the answers come, the renderer writes them as
//! they are. One plan therefore drives both the live run and the scenario
//! file of a failure, and the two cannot drift apart.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use super::op::{CrossCall, Forgery, Op, APPS, EMAILS, SEVERITIES, STATUSES};

/// What a lead-processing redelivery names as the lead's origin.
pub const LEAD_APP: &str = "flow-web";
/// A key of the platform's format that nobody issued.
pub const MADE_UP_KEY: &str = "tk_propforged1_NotIssuedByAnyTenantSecret01";
/// A bearer token that no service signed.
pub const FORGED_TOKEN: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJmbG93LWFwaSIsImF1ZCI6ImNybS1hcGkiLCJzdWIiOiJ4Iiwic2NvcGUiOiJ3cml0ZTpjb250YWN0cyJ9.cHJvcGVydHktdGVzdHMtZm9yZ2VkLXNpZ25hdHVyZQ";

/// The email number `n` of the pool.
pub fn email(n: usize) -> String {
    format!("p{}@prop.test", n % EMAILS)
}

/// A lead the model knows: its owner, email and status now.
#[derive(Debug, Clone)]
pub struct Lead {
    pub tenant: usize,
    pub email: String,
    pub status: &'static str,
}

/// Something an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Entity {
    Lead(usize),
    Incident(usize),
}

impl Entity {
    /// The variable holding its id.
    pub fn var(self) -> String {
        match self {
            Entity::Lead(n) => format!("lead-{n}"),
            Entity::Incident(n) => format!("incident-{n}"),
        }
    }
}

/// An event the platform must publish, caused at plan step `at`.
#[derive(Debug, Clone)]
pub struct Event {
    pub kind: &'static str,
    pub tenant: usize,
    pub entity: Entity,
    pub at: usize,
}

/// A WebSocket client opened at plan step `at`.
#[derive(Debug, Clone)]
pub struct Conn {
    pub tenant: usize,
    pub app: &'static str,
    pub at: usize,
}

/// Who a request claims to be.
#[derive(Debug, Clone, PartialEq)]
pub enum Creds {
    /// The tenant's key, id and the app: `tenant:`/`app:` of a scenario.
    As { tenant: usize, app: &'static str },
    /// No tenant headers: only `headers`.
    Bare,
}

/// One HTTP request; strings may hold `${...}` references.
#[derive(Debug, Clone)]
pub struct Call {
    pub service: &'static str,
    pub creds: Creds,
    pub method: &'static str,
    pub path: String,
    pub json: Option<Value>,
    /// Sent after (and over) the tenant headers.
    pub headers: Vec<(&'static str, String)>,
}

/// What an answer must be.
#[derive(Debug, Clone)]
pub enum Expect {
    /// 201 with the tenant's id; the id is bound to `var`.
    Created { tenant: usize, var: String },
    /// 200: this lead of this tenant, in this status.
    Lead {
        tenant: usize,
        lead: usize,
        status: &'static str,
    },
    /// 200: exactly these leads (with their statuses), nobody else's.
    Leads {
        tenant: usize,
        leads: Vec<(usize, &'static str)>,
    },
    /// 200: the contacts of these emails, in order; new ones bound.
    Synced {
        tenant: usize,
        contacts: Vec<(usize, String, bool)>,
    },
    /// 200: these contacts among the tenant's; every one the tenant's and
    /// with an email it used (a lead's contact is made asynchronously).
    Contacts {
        tenant: usize,
        must: Vec<usize>,
        may: BTreeSet<String>,
    },
    /// 200: exactly these deals.
    Deals { tenant: usize, deals: Vec<usize> },
    /// A refusal: one of these statuses (the first is the reference's),
    /// an error body, never data.
    Refused(&'static [u16]),
    /// Just this status (a refused status change, 409).
    Status(u16),
}

/// One step of a plan.
#[derive(Debug, Clone)]
pub enum Step {
    Http {
        /// Why, for messages and comments.
        what: String,
        call: Call,
        expect: Expect,
    },
    Subscribe {
        conn: usize,
    },
    Redeliver {
        lead: usize,
    },
}

/// A sequence of operations, planned.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub tenants: usize,
    /// The operation each step comes from (index into the ops).
    pub origin: Vec<usize>,
    pub steps: Vec<Step>,
    pub leads: Vec<Lead>,
    /// Contacts the case synced: (tenant, email).
    pub contacts: Vec<(usize, String)>,
    /// Deals' tenants.
    pub deals: Vec<usize>,
    /// Incidents' tenants.
    pub incidents: Vec<usize>,
    pub conns: Vec<Conn>,
    pub events: Vec<Event>,
    /// Operations skipped because what they name does not exist.
    pub skipped: Vec<usize>,
}

/// Whether a lead may go from one status to another (the platform's rule:
/// forward only, `converted` and `lost` final).
pub fn transition_allowed(from: &str, to: &str) -> bool {
    matches!(
        (from, to),
        ("new", "contacted" | "qualified" | "lost")
            | ("contacted", "qualified" | "lost")
            | ("qualified", "converted" | "lost")
    )
}

/// The variable of tenant `t` (`${t0}` is its id, `${t0.key}` its key).
pub fn tenant_var(t: usize) -> String {
    format!("t{t}")
}

impl Plan {
    /// Plans `ops` for `tenants` tenants.
    pub fn new(tenants: usize, ops: &[Op]) -> Plan {
        let mut plan = Plan {
            tenants: tenants.max(1),
            ..Plan::default()
        };
        for (i, op) in ops.iter().enumerate() {
            let before = plan.steps.len();
            plan.add(op);
            if plan.steps.len() == before {
                plan.skipped.push(i);
            }
            plan.origin.resize(plan.steps.len(), i);
        }
        plan
    }

    /// The events connection `c` must receive (caused after it opened).
    pub fn required(&self, c: usize) -> Vec<&Event> {
        self.routed(c).filter(|e| e.at > self.conns[c].at).collect()
    }

    /// The events connection `c` may receive but need not (caused before
    /// it opened: they race the connection).
    pub fn optional(&self, c: usize) -> Vec<&Event> {
        self.routed(c).filter(|e| e.at < self.conns[c].at).collect()
    }

    fn routed(&self, c: usize) -> impl Iterator<Item = &Event> {
        let conn = &self.conns[c];
        self.events.iter().filter(move |e| {
            e.tenant == conn.tenant && tekup_services::events::routes_for(e.kind).contains(&conn.app)
        })
    }

    fn t(&self, t: usize) -> usize {
        t % self.tenants
    }

    /// Another tenant than `t`, picked by `n`.
    fn other(&self, t: usize, n: usize) -> usize {
        if self.tenants < 2 {
            return t;
        }
        (t + 1 + n % (self.tenants - 1)) % self.tenants
    }

    fn http(&mut self, what: String, call: Call, expect: Expect) {
        self.steps.push(Step::Http { what, call, expect });
    }

    fn leads_of(&self, t: usize) -> Vec<(usize, &'static str)> {
        (0..self.leads.len())
            .filter(|&n| self.leads[n].tenant == t)
            .map(|n| (n, self.leads[n].status))
            .collect()
    }

    /// The owner's view after a refused write: its leads and contacts
    /// (and deals) are as the model says.
    fn verify(&mut self, t: usize) {
        let why = format!("t{t}'s own view is unchanged");
        self.http(why.clone(), list_leads(t), Expect::Leads {
            tenant: t,
            leads: self.leads_of(t),
        });
        let contacts = self.contacts_expect(t);
        self.http(why.clone(), get(t, "crm-web", "crm-api", "/contacts"), contacts);
        let deals = (0..self.deals.len()).filter(|&d| self.deals[d] == t).collect();
        self.http(why, get(t, "crm-web", "crm-api", "/deals"), Expect::Deals {
            tenant: t,
            deals,
        });
    }

    fn contacts_expect(&self, t: usize) -> Expect {
        let must: Vec<usize> = (0..self.contacts.len())
            .filter(|&c| self.contacts[c].0 == t)
            .collect();
        let may = must
            .iter()
            .map(|&c| self.contacts[c].1.clone())
            .chain(self.leads.iter().filter(|l| l.tenant == t).map(|l| l.email.clone()))
            .collect();
        Expect::Contacts { tenant: t, must, may }
    }

    fn add(&mut self, op: &Op) {
        match op {
            Op::CreateLead { tenant, email: e } => {
                let t = self.t(*tenant);
                let n = self.leads.len();
                let email = email(*e);
                let body = json!({ "firstName": "Prop", "lastName": format!("Lead{n}"), "email": email });
                self.http(
                    format!("t{t} creates lead-{n}"),
                    post(t, "flow-web", "flow-api", "/leads", body),
                    Expect::Created { tenant: t, var: format!("lead-{n}") },
                );
                self.leads.push(Lead { tenant: t, email, status: "new" });
                self.events.push(Event {
                    kind: "LEAD_CREATED",
                    tenant: t,
                    entity: Entity::Lead(n),
                    at: self.steps.len() - 1,
                });
            }
            Op::UpdateLead { tenant, lead, status } => {
                let Some(n) = pick(*lead, self.leads.len()) else { return };
                let t = self.t(*tenant);
                let to = STATUSES[status % STATUSES.len()];
                let owner = self.leads[n].tenant;
                let call = Call {
                    method: "PATCH",
                    ..post(t, "flow-web", "flow-api", &format!("/leads/${{lead-{n}}}"), json!({ "status": to }))
                };
                if owner != t {
                    self.http(format!("t{t} moves t{owner}'s lead-{n}"), call, Expect::Refused(&[404, 403]));
                    let status = self.leads[n].status;
                    self.http(
                        format!("t{owner}'s lead-{n} is unchanged"),
                        get(owner, "flow-web", "flow-api", &format!("/leads/${{lead-{n}}}")),
                        Expect::Lead { tenant: owner, lead: n, status },
                    );
                } else if transition_allowed(self.leads[n].status, to) {
                    self.leads[n].status = to;
                    self.http(format!("t{t} moves lead-{n} to {to}"), call, Expect::Lead { tenant: t, lead: n, status: to });
                } else {
                    let from = self.leads[n].status;
                    self.http(format!("t{t} may not move lead-{n} from {from} to {to}"), call, Expect::Status(409));
                }
            }
            Op::ListLeads { tenant } => {
                let t = self.t(*tenant);
                self.http(format!("t{t} lists its leads"), list_leads(t), Expect::Leads {
                    tenant: t,
                    leads: self.leads_of(t),
                });
            }
            Op::GetLead { tenant, lead } => {
                let Some(n) = pick(*lead, self.leads.len()) else { return };
                let t = self.t(*tenant);
                let call = get(t, "flow-web", "flow-api", &format!("/leads/${{lead-{n}}}"));
                let owner = self.leads[n].tenant;
                if owner == t {
                    let status = self.leads[n].status;
                    self.http(format!("t{t} reads lead-{n}"), call, Expect::Lead { tenant: t, lead: n, status });
                } else {
                    self.http(format!("t{t} reads t{owner}'s lead-{n}"), call, Expect::Refused(&[404, 403]));
                }
            }
            Op::SyncContacts { tenant, emails } => {
                let t = self.t(*tenant);
                let mut seen = BTreeSet::new();
                let mut contacts = Vec::new();
                for e in emails {
                    let email = email(*e);
                    if !seen.insert(email.clone()) {
                        continue;
                    }
                    let known = self.contacts.iter().position(|(ct, ce)| *ct == t && *ce == email);
                    let (slot, new) = match known {
                        Some(c) => (c, false),
                        None => {
                            self.contacts.push((t, email.clone()));
                            (self.contacts.len() - 1, true)
                        }
                    };
                    contacts.push((slot, email, new));
                }
                let body = json!({ "contacts": contacts.iter().map(|(_, e, _)| json!({ "email": e, "company": "Prop" })).collect::<Vec<_>>() });
                self.http(
                    format!("t{t} syncs {} contact(s)", contacts.len()),
                    post(t, "crm-web", "crm-api", "/contacts/sync", body),
                    Expect::Synced { tenant: t, contacts },
                );
            }
            Op::ListContacts { tenant } => {
                let t = self.t(*tenant);
                let expect = self.contacts_expect(t);
                self.http(format!("t{t} lists its contacts"), get(t, "crm-web", "crm-api", "/contacts"), expect);
            }
            Op::CreateDeal { tenant, contact } => {
                let t = self.t(*tenant);
                let n = self.deals.len();
                let mut body = json!({ "title": format!("Prop deal {n}"), "amount": 1000, "currency": "eur" });
                let owner = match contact.and_then(|c| pick(c, self.contacts.len())) {
                    Some(c) => {
                        body["contactId"] = json!(format!("${{contact-{c}}}"));
                        Some((c, self.contacts[c].0))
                    }
                    None => None,
                };
                let call = post(t, "crm-web", "crm-api", "/deals", body);
                match owner {
                    Some((c, owner)) if owner != t => {
                        self.http(format!("t{t} opens a deal on t{owner}'s contact-{c}"), call, Expect::Refused(&[422, 404, 403]));
                        self.verify(t);
                    }
                    _ => {
                        self.http(format!("t{t} opens deal-{n}"), call, Expect::Created { tenant: t, var: format!("deal-{n}") });
                        self.deals.push(t);
                    }
                }
            }
            Op::ReportIncident { tenant, severity } => {
                let t = self.t(*tenant);
                let n = self.incidents.len();
                let severity = SEVERITIES[severity % SEVERITIES.len()];
                let body = json!({ "title": format!("Prop incident {n}"), "severity": severity });
                self.http(
                    format!("t{t} reports incident-{n}"),
                    post(t, "secure-platform", "secure-platform", "/incidents", body),
                    Expect::Created { tenant: t, var: format!("incident-{n}") },
                );
                self.incidents.push(t);
                self.events.push(Event {
                    kind: "SECURITY_INCIDENT",
                    tenant: t,
                    entity: Entity::Incident(n),
                    at: self.steps.len() - 1,
                });
            }
            Op::Subscribe { tenant, app } => {
                let t = self.t(*tenant);
                self.conns.push(Conn { tenant: t, app: APPS[app % APPS.len()], at: self.steps.len() });
                self.steps.push(Step::Subscribe { conn: self.conns.len() - 1 });
            }
            Op::CrossApp { tenant, call } => self.cross_app(self.t(*tenant), *call),
            Op::Forged { tenant, victim, forgery } => {
                let t = self.t(*tenant);
                let v = self.other(t, *victim);
                if v != t {
                    self.forged(t, v, *forgery);
                }
            }
            Op::Redeliver { lead } => {
                let Some(n) = pick(*lead, self.leads.len()) else { return };
                self.steps.push(Step::Redeliver { lead: n });
            }
        }
    }

    fn cross_app(&mut self, t: usize, call: CrossCall) {
        let lead = json!({ "firstName": "Mallory", "email": "mallory@prop.test" });
        let sync = json!({ "contacts": [ { "email": "mallory@prop.test" } ] });
        let (what, call, status): (&str, Call, &'static [u16]) = match call {
            CrossCall::ServiceIdentity => ("a tenant key naming the worker", post(t, "worker", "flow-api", "/leads", lead), &[403]),
            CrossCall::NoPermission => ("voice-agent writing a lead", post(t, "voice-agent", "flow-api", "/leads", lead), &[403]),
            CrossCall::WrongService => ("flow-web syncing CRM contacts", post(t, "flow-web", "crm-api", "/contacts/sync", sync), &[403]),
            CrossCall::UnknownApp => ("an app outside the tenant's allowed apps", get(t, "rogue-app", "flow-api", "/leads"), &[403]),
            CrossCall::ForgedToken => {
                let mut call = post(t, "flow-web", "crm-api", "/contacts/sync", sync);
                call.creds = Creds::Bare;
                call.headers = vec![
                    ("authorization", format!("Bearer {FORGED_TOKEN}")),
                    ("x-tenant-id", format!("${{{}}}", tenant_var(t))),
                    ("x-source-app", "flow-api".to_owned()),
                ];
                ("an unsigned cross-app token", call, &[401])
            }
        };
        self.http(format!("t{t}: {what}"), call, Expect::Refused(status));
        self.verify(t);
    }

    fn forged(&mut self, t: usize, v: usize, forgery: Forgery) {
        let lead = json!({ "firstName": "Mallory", "email": "mallory@prop.test" });
        match forgery {
            Forgery::SwappedKey => {
                let mut call = post(t, "flow-web", "flow-api", "/leads", lead);
                call.headers = vec![("x-tenant-id", format!("${{{}}}", tenant_var(v)))];
                self.http(format!("t{t}'s key with t{v}'s id"), call, Expect::Refused(&[403]));
                self.verify(t);
                self.verify(v);
            }
            Forgery::MadeUpKey => {
                let mut call = post(v, "flow-web", "flow-api", "/leads", lead);
                call.headers = vec![("x-tenant-key", MADE_UP_KEY.to_owned())];
                self.http(format!("a made-up key with t{v}'s id"), call, Expect::Refused(&[401]));
                self.verify(v);
            }
            Forgery::ForeignContact => {
                let Some(c) = (0..self.contacts.len()).find(|&c| self.contacts[c].0 == v) else {
                    return;
                };
                let body = json!({ "leadId": uuid::Uuid::nil() });
                let call = post(t, "crm-web", "crm-api", &format!("/contacts/${{contact-{c}}}/leads"), body);
                self.http(format!("t{t} links a lead to t{v}'s contact-{c}"), call, Expect::Refused(&[404, 403]));
                self.verify(v);
            }
            Forgery::ForeignIncident => {
                let Some(i) = (0..self.incidents.len()).find(|&i| self.incidents[i] == v) else {
                    return;
                };
                let call = post(t, "secure-platform", "secure-platform", &format!("/incidents/${{incident-{i}}}/resolve"), json!({}));
                self.http(format!("t{t} resolves t{v}'s incident-{i}"), call, Expect::Refused(&[404, 403]));
            }
        }
    }
}

/// `index` among `count` things, if there are any.
fn pick(index: usize, count: usize) -> Option<usize> {
    (count > 0).then(|| index % count)
}

fn get(t: usize, app: &'static str, service: &'static str, path: &str) -> Call {
    Call {
        service,
        creds: Creds::As { tenant: t, app },
        method: "GET",
        path: path.to_owned(),
        json: None,
        headers: Vec::new(),
    }
}

fn post(t: usize, app: &'static str, service: &'static str, path: &str, body: Value) -> Call {
    Call {
        method: "POST",
        json: Some(body),
        ..get(t, app, service, path)
    }
}

fn list_leads(t: usize) -> Call {
    get(t, "flow-web", "flow-api", "/leads?limit=500")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_resolve_modulo_what_exists_and_missing_targets_skip() {
        let ops = [
            Op::Redeliver { lead: 3 },
            Op::CreateLead { tenant: 4, email: 1 },
            Op::GetLead { tenant: 1, lead: 7 },
            Op::Redeliver { lead: 5 },
        ];
        let plan = Plan::new(2, &ops);
        assert_eq!(plan.skipped, [0]);
        assert_eq!(plan.leads[0].tenant, 0);
        assert!(matches!(
            &plan.steps[1],
            Step::Http { expect: Expect::Refused(&[404, 403]), .. }
        ));
        assert!(matches!(plan.steps[2], Step::Redeliver { lead: 0 }));
        assert_eq!(plan.origin, [1, 2, 3]);
    }

    #[test]
    fn events_are_required_after_a_subscription_and_optional_before() {
        let ops = [
            Op::CreateLead { tenant: 0, email: 0 },
            Op::Subscribe { tenant: 0, app: 1 },
            Op::Subscribe { tenant: 1, app: 1 },
            Op::CreateLead { tenant: 0, email: 1 },
            Op::ReportIncident { tenant: 0, severity: 0 },
        ];
        let plan = Plan::new(2, &ops);
        let required: Vec<Entity> = plan.required(0).iter().map(|e| e.entity).collect();
        assert_eq!(required, [Entity::Lead(1)]);
        let optional: Vec<Entity> = plan.optional(0).iter().map(|e| e.entity).collect();
        assert_eq!(optional, [Entity::Lead(0)]);
        assert!(plan.required(1).is_empty() && plan.optional(1).is_empty());
    }
}
