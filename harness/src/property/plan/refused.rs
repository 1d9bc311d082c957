//! Requests that must be refused: calls across apps and services, forged
//! or swapped credentials, other tenants' ids. After each refused write
//! the owners' views are read again: a refusal must change nothing.

use serde_json::json;

use super::super::op::{CrossCall, Forgery};
use super::{get, post, tenant_var, Call, Creds, Expect, Plan, FORGED_TOKEN, MADE_UP_KEY};

impl Plan {
    pub(super) fn cross_app(&mut self, t: usize, call: CrossCall) {
        let lead = json!({ "firstName": "Mallory", "email": "mallory@prop.test" });
        let sync = json!({ "contacts": [ { "email": "mallory@prop.test" } ] });
        let (what, call, status): (&str, Call, &'static [u16]) = match call {
            // The worker's own service-to-service call (it files an
            // incident's compliance report with its `write:incidents`).
            CrossCall::ServiceIdentity => (
                "a tenant key naming the worker, on the worker's path",
                post(
                    t,
                    "worker",
                    "flow-api",
                    "/compliance/report",
                    json!({ "incidentId": uuid::Uuid::nil(), "severity": "high", "summary": "forged" }),
                ),
                &[403],
            ),
            CrossCall::NoPermission => (
                "voice-agent writing a lead",
                post(t, "voice-agent", "flow-api", "/leads", lead),
                &[403],
            ),
            CrossCall::WrongService => (
                "flow-web syncing CRM contacts",
                post(t, "flow-web", "crm-api", "/contacts/sync", sync),
                &[403],
            ),
            CrossCall::UnknownApp => (
                "an app outside the tenant's allowed apps",
                get(t, "rogue-app", "flow-api", "/leads"),
                &[403],
            ),
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

    pub(super) fn forged(&mut self, t: usize, v: usize, forgery: Forgery) {
        let lead = json!({ "firstName": "Mallory", "email": "mallory@prop.test" });
        match forgery {
            Forgery::SwappedKey => {
                let mut call = post(t, "flow-web", "flow-api", "/leads", lead);
                call.headers = vec![("x-tenant-id", format!("${{{}}}", tenant_var(v)))];
                self.http(
                    format!("t{t}'s key with t{v}'s id"),
                    call,
                    Expect::Refused(&[403]),
                );
                self.verify(t);
                self.verify(v);
            }
            Forgery::MadeUpKey => {
                let mut call = post(v, "flow-web", "flow-api", "/leads", lead);
                call.headers = vec![("x-tenant-key", MADE_UP_KEY.to_owned())];
                self.http(
                    format!("a made-up key with t{v}'s id"),
                    call,
                    Expect::Refused(&[401]),
                );
                self.verify(v);
            }
            Forgery::ForeignContact => {
                let Some(c) = (0..self.contacts.len()).find(|&c| self.contacts[c].0 == v) else {
                    return;
                };
                let body = json!({ "leadId": uuid::Uuid::nil() });
                let call = post(
                    t,
                    "crm-web",
                    "crm-api",
                    &format!("/contacts/${{contact-{c}}}/leads"),
                    body,
                );
                self.http(
                    format!("t{t} links a lead to t{v}'s contact-{c}"),
                    call,
                    Expect::Refused(&[404, 403]),
                );
                self.verify(v);
            }
            Forgery::ForeignIncident => {
                let Some(i) = (0..self.incidents.len()).find(|&i| self.incidents[i] == v) else {
                    return;
                };
                let call = post(
                    t,
                    "secure-platform",
                    "secure-platform",
                    &format!("/incidents/${{incident-{i}}}/resolve"),
                    json!({}),
                );
                self.http(
                    format!("t{t} resolves t{v}'s incident-{i}"),
                    call,
                    Expect::Refused(&[404, 403]),
                );
            }
        }
    }
}
