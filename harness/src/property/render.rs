//! A plan as a scenario file, so a shrunk failure can be rerun, read and
//! kept as a regression test (`tekup-harness run FILE`).
//!
//! Values are written as JSON, which is YAML's flow syntax, so every
//! string is quoted and `${...}` needs no care. What the scenario format
//! cannot say is left out with a comment: that a listed contact's email
//! is one the tenant used (the list is checked to contain the synced
//! ones), and events a client may or may not receive (caused before it
//! connected: they race the connection).

use std::time::Duration;

use serde_json::{json, Value};

use super::op::Op;
use super::plan::{tenant_var, Call, Creds, Expect, Plan, Step, LEAD_APP};

/// How long the rendered end waits for the platform to finish its work.
const SETTLE: &str = "30s";

/// The scenario of `ops` (planned as `plan`), named after `seed`, with the
/// operations and the findings as its header comment.
pub fn scenario(
    seed: u64,
    ops: &[Op],
    plan: &Plan,
    findings: &[String],
    quiet: Duration,
) -> String {
    let mut out = String::new();
    let w = &mut out;
    line(w, &format!("# The minimal failing sequence the property suite found with seed {seed} (tekup-harness prop)."));
    line(w, "# Operations (t0, t1, … are the case's fresh tenants):");
    for i in 0..ops.len() {
        line(w, &format!("#   {}. {}", i + 1, plan.describe(i, ops)));
    }
    line(w, "# What failed:");
    for finding in findings {
        // A finding may quote a response: no API key or bearer token is
        // written into the file.
        let finding = crate::scenario::run::redact(finding, &[]);
        for (k, text) in finding.lines().enumerate() {
            line(w, &format!("#   {} {text}", if k == 0 { "-" } else { " " }));
        }
    }
    line(w, &format!("name: property-{seed}"));
    line(w, "tags: [property]");
    let tenants: Vec<String> = (0..plan.tenants).map(tenant_var).collect();
    line(w, &format!("tenants: [{}]", tenants.join(", ")));
    line(w, "timeout: 5m");
    line(w, "steps:");
    for step in &plan.steps {
        match step {
            Step::Http { what, call, expect } => http(w, what, call, expect),
            Step::Subscribe { conn } => {
                let c = &plan.conns[*conn];
                line(
                    w,
                    &format!(
                        "  - ws: {{ connect: c{conn}, tenant: {}, app: {} }}",
                        tenant_var(c.tenant),
                        c.app
                    ),
                );
            }
            Step::Redeliver { lead } => {
                line(
                    w,
                    &format!("  # lead-{lead}'s processing job, handed to the workers again"),
                );
                let payload = json!({ "leadId": format!("${{lead-{lead}}}"), "originApp": LEAD_APP, "notifyVoice": false });
                line(w, &format!(
                    "  - redis: {{ enqueue: lead-processing, kind: process-lead, tenant: {}, payload: {payload} }}",
                    tenant_var(plan.leads[*lead].tenant)
                ));
            }
        }
    }
    end(w, plan, quiet);
    out
}

fn line(w: &mut String, text: &str) {
    w.push_str(text);
    w.push('\n');
}

fn http(w: &mut String, what: &str, call: &Call, expect: &Expect) {
    line(w, &format!("  # {what}"));
    line(w, "  - http:");
    line(w, &format!("      service: {}", call.service));
    if let Creds::As { tenant, app } = &call.creds {
        line(w, &format!("      tenant: {}", tenant_var(*tenant)));
        line(w, &format!("      app: {app}"));
    }
    let mut request = json!({ "method": call.method, "path": call.path });
    if let Some(body) = &call.json {
        request["json"] = body.clone();
    }
    if !call.headers.is_empty() {
        request["headers"] = call
            .headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), json!(v)))
            .collect();
    }
    line(w, &format!("      request: {request}"));
    let (status, body, save) = expectation(expect);
    let mut e = json!({ "status": status });
    if let Some(body) = body {
        e["json"] = body;
    }
    line(w, &format!("      expect: {e}"));
    if let Some(save) = save {
        line(w, &format!("      save: {save}"));
    }
}

/// The status, the JSON subset and the saves of an expectation.
fn expectation(expect: &Expect) -> (u16, Option<Value>, Option<Value>) {
    let t = |t: &usize| format!("${{{}}}", tenant_var(*t));
    match expect {
        Expect::Created { tenant, var } => (
            201,
            Some(json!({ "tenantId": t(tenant) })),
            Some(json!({ var: "$.id" })),
        ),
        Expect::Lead {
            tenant,
            lead,
            status,
        } => (
            200,
            Some(
                json!({ "id": format!("${{lead-{lead}}}"), "tenantId": t(tenant), "status": status }),
            ),
            None,
        ),
        Expect::Leads { leads, .. } => {
            let data: Vec<Value> = leads
                .iter()
                .map(|(n, status)| json!({ "id": format!("${{lead-{n}}}"), "status": status }))
                .collect();
            (
                200,
                Some(json!({ "total": leads.len(), "data": data })),
                None,
            )
        }
        Expect::Synced { tenant, contacts } => {
            let mut save = serde_json::Map::new();
            let data: Vec<Value> = contacts
                .iter()
                .enumerate()
                .map(|(i, (slot, email, new))| {
                    if *new {
                        save.insert(format!("contact-{slot}"), json!(format!("$.data[{i}].id")));
                        json!({ "email": email, "tenantId": t(tenant) })
                    } else {
                        json!({ "email": email, "tenantId": t(tenant), "id": format!("${{contact-{slot}}}") })
                    }
                })
                .collect();
            (
                200,
                Some(json!({ "data": data })),
                (!save.is_empty()).then_some(Value::Object(save)),
            )
        }
        Expect::Contacts { tenant, must, .. } => {
            let data: Vec<Value> = must
                .iter()
                .map(|c| json!({ "id": format!("${{contact-{c}}}"), "tenantId": t(tenant) }))
                .collect();
            (200, Some(json!({ "data": data })), None)
        }
        Expect::Deals { deals, .. } => {
            let data: Vec<Value> = deals
                .iter()
                .map(|d| json!({ "id": format!("${{deal-{d}}}") }))
                .collect();
            (200, Some(json!({ "data": data })), None)
        }
        Expect::Refused(codes) => (codes[0], None, None),
        Expect::Status(s) => (*s, None, None),
    }
}

/// The invariants at the end: work done, one activity and one association
/// per lead, the events each client must (and must not) have received.
fn end(w: &mut String, plan: &Plan, quiet: Duration) {
    if plan.leads.is_empty() && plan.conns.is_empty() {
        return;
    }
    line(
        w,
        "  # ---- the end: the platform has finished its work ----",
    );
    for (queue, tenants) in [
        (
            "lead-processing",
            plan.leads.iter().map(|l| l.tenant).collect::<Vec<_>>(),
        ),
        ("compliance-checks", plan.incidents.clone()),
    ] {
        if !tenants.is_empty() {
            line(
                w,
                &format!(
                    "  - eventually: {{ within: {SETTLE}, redis: {{ queue: {queue}, size: 0 }} }}"
                ),
            );
        }
    }
    for n in 0..plan.leads.len() {
        line(
            w,
            &format!("  # lead-{n}: exactly one LEAD_CREATED activity and one contact association"),
        );
        line(w, &format!(
            "  - sql: {{ admin: true, query: \"select count(*) from flow.activities where entity_id = $1 and type = 'LEAD_CREATED'\", args: [\"${{lead-{n}}}\"], expect: [[1]] }}"
        ));
        line(w, &format!(
            "  - sql: {{ admin: true, query: \"select count(*) from crm.contact_leads where lead_id = $1\", args: [\"${{lead-{n}}}\"], expect: [[1]] }}"
        ));
    }
    // The first absence check listens for the quiet window; the ones after
    // it only need to look at what came meanwhile.
    let mut quiet = Some(format!("{}ms", quiet.as_millis().max(1000)));
    let mut quiet = move || quiet.take().unwrap_or_else(|| "100ms".to_owned());
    for c in 0..plan.conns.len() {
        let conn = &plan.conns[c];
        for e in plan.required(c) {
            let data = json!({ "id": format!("${{{}}}", e.entity.var()), "tenantId": format!("${{{}}}", tenant_var(e.tenant)) });
            line(
                w,
                &format!(
                    "  - ws: {{ expect: c{c}, event: {}, within: 10s, data: {data} }}",
                    e.kind
                ),
            );
        }
        let optional = plan.optional(c);
        if optional.is_empty() {
            line(
                w,
                &format!("  - ws: {{ expect-none: c{c}, for: {} }}", quiet()),
            );
            continue;
        }
        for kind in routes_for_app(conn.app) {
            if optional.iter().any(|e| e.kind == kind) {
                let about: Vec<String> = optional
                    .iter()
                    .filter(|e| e.kind == kind)
                    .map(|e| e.entity.var())
                    .collect();
                line(w, &format!(
                    "  # c{c} may or may not get {kind} about {} (caused before it connected): not checked",
                    about.join(", ")
                ));
            } else {
                line(
                    w,
                    &format!(
                        "  - ws: {{ expect-none: c{c}, event: {kind}, for: {} }}",
                        quiet()
                    ),
                );
            }
        }
    }
}

/// The event types the contract's routing table sends to `app`.
fn routes_for_app(app: &str) -> Vec<&'static str> {
    crate::contract::active().events_for_app(app)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_renders_as_a_valid_scenario() {
        let ops = [
            Op::Subscribe { tenant: 1, app: 1 },
            Op::CreateLead {
                tenant: 0,
                email: 0,
            },
            Op::SyncContacts {
                tenant: 0,
                emails: vec![0, 1],
            },
            Op::Redeliver { lead: 0 },
            Op::Forged {
                tenant: 0,
                victim: 0,
                forgery: super::super::op::Forgery::SwappedKey,
            },
            Op::Subscribe { tenant: 0, app: 0 },
        ];
        let plan = Plan::new(2, &ops);
        let text = scenario(
            7,
            &ops,
            &plan,
            &["lead x has 2 LEAD_CREATED activities, not 1".into()],
            Duration::from_millis(300),
        );
        let parsed = crate::scenario::parse_str(std::path::Path::new("7-minimal.yaml"), &text);
        let scenario = parsed.unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(scenario.name, "property-7");
        assert!(
            text.contains("redis: { enqueue: lead-processing, kind: process-lead, tenant: t0"),
            "{text}"
        );
        assert!(
            text.contains("#   - lead x has 2 LEAD_CREATED activities, not 1"),
            "{text}"
        );
        assert!(
            text.contains("c1 may or may not get LEAD_CREATED about lead-0"),
            "{text}"
        );
        assert!(
            text.contains("- ws: { expect-none: c0, for: 1000ms }"),
            "{text}"
        );
    }
}
