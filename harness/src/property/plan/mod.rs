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

use serde_json::Value;

mod ops;
mod refused;

use super::op::{Op, EMAILS};

/// What a lead-processing redelivery names as the lead's origin.
pub const LEAD_APP: &str = "flow-web";
/// A key of the platform's format that nobody issued.
pub const MADE_UP_KEY: &str = "tk_propforged1_NotIssuedByAnyTenantSecret01";
/// A bearer token that no service signed (and, lest it read as a leaked
/// credential, long expired: the repository holds no long-lived token).
pub const FORGED_TOKEN: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJmbG93LWFwaSIsImF1ZCI6ImNybS1hcGkiLCJzdWIiOiJ4Iiwic2NvcGUiOiJ3cml0ZTpjb250YWN0cyIsImlhdCI6MCwiZXhwIjo2MH0.cHJvcGVydHktdGVzdHMtZm9yZ2VkLXNpZ25hdHVyZQ";

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
        call: Box<Call>,
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

    /// What operation `i` of `ops` does in this plan, with its tenants
    /// and targets resolved (`t0 creates lead-1`).
    pub fn describe(&self, i: usize, ops: &[Op]) -> String {
        if self.skipped.contains(&i) {
            return format!("{} (skipped: nothing to refer to)", ops[i]);
        }
        let Some(first) = self.origin.iter().position(|&o| o == i) else {
            return ops[i].to_string();
        };
        match &self.steps[first] {
            Step::Http { what, .. } => what.clone(),
            Step::Subscribe { conn } => {
                let c = &self.conns[*conn];
                format!("t{} subscribes as {} (c{conn})", c.tenant, c.app)
            }
            Step::Redeliver { lead } => format!("lead-{lead}'s job is delivered again"),
        }
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
            e.tenant == conn.tenant
                && crate::contract::active()
                    .routes_for(e.kind)
                    .iter()
                    .any(|a| a == conn.app)
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
        self.steps.push(Step::Http {
            what,
            call: Box::new(call),
            expect,
        });
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
        self.http(
            why.clone(),
            list_leads(t),
            Expect::Leads {
                tenant: t,
                leads: self.leads_of(t),
            },
        );
        let contacts = self.contacts_expect(t);
        self.http(
            why.clone(),
            get(t, "crm-web", "crm-api", "/contacts"),
            contacts,
        );
        let deals = (0..self.deals.len())
            .filter(|&d| self.deals[d] == t)
            .collect();
        self.http(
            why,
            get(t, "crm-web", "crm-api", "/deals"),
            Expect::Deals { tenant: t, deals },
        );
    }

    fn contacts_expect(&self, t: usize) -> Expect {
        let must: Vec<usize> = (0..self.contacts.len())
            .filter(|&c| self.contacts[c].0 == t)
            .collect();
        let may = must
            .iter()
            .map(|&c| self.contacts[c].1.clone())
            .chain(
                self.leads
                    .iter()
                    .filter(|l| l.tenant == t)
                    .map(|l| l.email.clone()),
            )
            .collect();
        Expect::Contacts {
            tenant: t,
            must,
            may,
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
            Op::CreateLead {
                tenant: 4,
                email: 1,
            },
            Op::GetLead { tenant: 1, lead: 7 },
            Op::Redeliver { lead: 5 },
        ];
        let plan = Plan::new(2, &ops);
        assert_eq!(plan.skipped, [0]);
        assert_eq!(plan.leads[0].tenant, 0);
        assert!(matches!(
            &plan.steps[1],
            Step::Http {
                expect: Expect::Refused(&[404, 403]),
                ..
            }
        ));
        assert!(matches!(plan.steps[2], Step::Redeliver { lead: 0 }));
        assert_eq!(plan.origin, [1, 2, 3]);
    }

    #[test]
    fn events_are_required_after_a_subscription_and_optional_before() {
        let ops = [
            Op::CreateLead {
                tenant: 0,
                email: 0,
            },
            Op::Subscribe { tenant: 0, app: 1 },
            Op::Subscribe { tenant: 1, app: 1 },
            Op::CreateLead {
                tenant: 0,
                email: 1,
            },
            Op::ReportIncident {
                tenant: 0,
                severity: 0,
            },
        ];
        let plan = Plan::new(2, &ops);
        let required: Vec<Entity> = plan.required(0).iter().map(|e| e.entity).collect();
        assert_eq!(required, [Entity::Lead(1)]);
        let optional: Vec<Entity> = plan.optional(0).iter().map(|e| e.entity).collect();
        assert_eq!(optional, [Entity::Lead(0)]);
        assert!(plan.required(1).is_empty() && plan.optional(1).is_empty());
    }
}
