//! The model's step for each operation: the requests it makes, the
//! answers they must get, and what the model owns afterwards.

use std::collections::BTreeSet;

use serde_json::json;

use super::super::op::{apps, Op, SEVERITIES, STATUSES};
use super::{
    email, get, list_leads, pick, post, transition_allowed, Call, Conn, Entity, Event, Expect,
    Lead, Plan, Step,
};

impl Plan {
    pub(super) fn add(&mut self, op: &Op) {
        match op {
            Op::CreateLead { tenant, email: e } => {
                let t = self.t(*tenant);
                let n = self.leads.len();
                let email = email(*e);
                let body =
                    json!({ "firstName": "Prop", "lastName": format!("Lead{n}"), "email": email });
                self.http(
                    format!("t{t} creates lead-{n}"),
                    post(t, "flow-web", "flow-api", "/leads", body),
                    Expect::Created {
                        tenant: t,
                        var: format!("lead-{n}"),
                    },
                );
                self.leads.push(Lead {
                    tenant: t,
                    email,
                    status: "new",
                });
                self.events.push(Event {
                    kind: "LEAD_CREATED",
                    tenant: t,
                    entity: Entity::Lead(n),
                    at: self.steps.len() - 1,
                });
            }
            Op::UpdateLead {
                tenant,
                lead,
                status,
            } => {
                let Some(n) = pick(*lead, self.leads.len()) else {
                    return;
                };
                let t = self.t(*tenant);
                let to = STATUSES[status % STATUSES.len()];
                let owner = self.leads[n].tenant;
                let call = Call {
                    method: "PATCH",
                    ..post(
                        t,
                        "flow-web",
                        "flow-api",
                        &format!("/leads/${{lead-{n}}}"),
                        json!({ "status": to }),
                    )
                };
                if owner != t {
                    self.http(
                        format!("t{t} moves t{owner}'s lead-{n}"),
                        call,
                        Expect::Refused(&[404, 403]),
                    );
                    let status = self.leads[n].status;
                    self.http(
                        format!("t{owner}'s lead-{n} is unchanged"),
                        get(
                            owner,
                            "flow-web",
                            "flow-api",
                            &format!("/leads/${{lead-{n}}}"),
                        ),
                        Expect::Lead {
                            tenant: owner,
                            lead: n,
                            status,
                        },
                    );
                } else if transition_allowed(self.leads[n].status, to) {
                    self.leads[n].status = to;
                    self.http(
                        format!("t{t} moves lead-{n} to {to}"),
                        call,
                        Expect::Lead {
                            tenant: t,
                            lead: n,
                            status: to,
                        },
                    );
                } else {
                    let from = self.leads[n].status;
                    self.http(
                        format!("t{t} may not move lead-{n} from {from} to {to}"),
                        call,
                        Expect::Status(409),
                    );
                }
            }
            Op::ListLeads { tenant } => {
                let t = self.t(*tenant);
                self.http(
                    format!("t{t} lists its leads"),
                    list_leads(t),
                    Expect::Leads {
                        tenant: t,
                        leads: self.leads_of(t),
                    },
                );
            }
            Op::GetLead { tenant, lead } => {
                let Some(n) = pick(*lead, self.leads.len()) else {
                    return;
                };
                let t = self.t(*tenant);
                let call = get(t, "flow-web", "flow-api", &format!("/leads/${{lead-{n}}}"));
                let owner = self.leads[n].tenant;
                if owner == t {
                    let status = self.leads[n].status;
                    self.http(
                        format!("t{t} reads lead-{n}"),
                        call,
                        Expect::Lead {
                            tenant: t,
                            lead: n,
                            status,
                        },
                    );
                } else {
                    self.http(
                        format!("t{t} reads t{owner}'s lead-{n}"),
                        call,
                        Expect::Refused(&[404, 403]),
                    );
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
                    let known = self
                        .contacts
                        .iter()
                        .position(|(ct, ce)| *ct == t && *ce == email);
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
                    Expect::Synced {
                        tenant: t,
                        contacts,
                    },
                );
            }
            Op::ListContacts { tenant } => {
                let t = self.t(*tenant);
                let expect = self.contacts_expect(t);
                self.http(
                    format!("t{t} lists its contacts"),
                    get(t, "crm-web", "crm-api", "/contacts"),
                    expect,
                );
            }
            Op::CreateDeal { tenant, contact } => {
                let t = self.t(*tenant);
                let n = self.deals.len();
                let mut body =
                    json!({ "title": format!("Prop deal {n}"), "amount": 1000, "currency": "eur" });
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
                        self.http(
                            format!("t{t} opens a deal on t{owner}'s contact-{c}"),
                            call,
                            Expect::Refused(&[422, 404, 403]),
                        );
                        self.verify(t);
                    }
                    _ => {
                        self.http(
                            format!("t{t} opens deal-{n}"),
                            call,
                            Expect::Created {
                                tenant: t,
                                var: format!("deal-{n}"),
                            },
                        );
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
                    Expect::Created {
                        tenant: t,
                        var: format!("incident-{n}"),
                    },
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
                self.conns.push(Conn {
                    tenant: t,
                    app: apps()[app % apps().len()],
                    at: self.steps.len(),
                });
                self.steps.push(Step::Subscribe {
                    conn: self.conns.len() - 1,
                });
            }
            Op::CrossApp { tenant, call } => self.cross_app(self.t(*tenant), *call),
            Op::Forged {
                tenant,
                victim,
                forgery,
            } => {
                let t = self.t(*tenant);
                let v = self.other(t, *victim);
                if v != t {
                    self.forged(t, v, *forgery);
                }
            }
            Op::Redeliver { lead } => {
                let Some(n) = pick(*lead, self.leads.len()) else {
                    return;
                };
                self.steps.push(Step::Redeliver { lead: n });
            }
        }
    }
}
