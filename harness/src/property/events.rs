//! What the case's WebSocket clients received, held to the model and the
//! routing table.
//!
//! Every event a client receives must be its own tenant's, of a type the
//! routing table sends to its app (the table is the
//! contract's, `crate::contract`, never the services' code), about something the
//! case did, and come once (by event id, and once per thing it is about).
//! Every event the model requires (caused after the client connected) must
//! come: the check waits for them up to a deadline, then keeps listening
//! for a quiet window in which nothing more may arrive.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::check::short;
use super::exec::{Vars, Waits};
use super::plan::{tenant_var, Event, Plan};
use crate::scenario::run::ws::Conn;

/// The findings about the clients' frames (none when all holds).
pub(crate) async fn check(plan: &Plan, conns: &[Conn], vars: &Vars, waits: Waits) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + waits.events;
    let required: Vec<Vec<(&Event, String)>> = (0..conns.len())
        .map(|c| with_ids(plan.required(c), vars))
        .collect();
    for (conn, want) in conns.iter().zip(&required) {
        conn.wait_for(deadline, |frames| {
            want.iter()
                .all(|(e, id)| frames.iter().any(|f| about(f, e.kind, id)))
        })
        .await;
    }
    // Absence is shown by listening for a bounded time, after everything
    // expected has come (or its deadline passed).
    tokio::time::sleep(waits.quiet).await;
    let mut findings = Vec::new();
    for (c, conn) in conns.iter().enumerate() {
        let optional = with_ids(plan.optional(c), vars);
        findings.extend(check_conn(
            plan,
            c,
            &conn.frames(),
            &required[c],
            &optional,
            vars,
            waits,
        ));
    }
    findings
}

fn with_ids<'p>(events: Vec<&'p Event>, vars: &Vars) -> Vec<(&'p Event, String)> {
    events
        .into_iter()
        .filter_map(|e| Some((e, vars.get(&e.entity.var()).ok()?.to_owned())))
        .collect()
}

/// Whether `frame` is an event of `kind` about the record `id`.
fn about(frame: &Value, kind: &str, id: &str) -> bool {
    frame["type"] == "event" && frame["event"]["type"] == kind && frame["event"]["data"]["id"] == id
}

fn check_conn(
    plan: &Plan,
    c: usize,
    frames: &[Value],
    required: &[(&Event, String)],
    optional: &[(&Event, String)],
    vars: &Vars,
    waits: Waits,
) -> Vec<String> {
    let conn = &plan.conns[c];
    let who = format!("c{c} (t{}, {})", conn.tenant, conn.app);
    let tenant_id = vars.get(&tenant_var(conn.tenant)).unwrap_or_default();
    let mut findings = Vec::new();
    let mut by_id: BTreeMap<String, usize> = BTreeMap::new();
    let mut by_subject: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for frame in frames.iter().filter(|f| f["type"] == "event") {
        let event = &frame["event"];
        let kind = event["type"].as_str().unwrap_or_default();
        let subject = event["data"]["id"].as_str().unwrap_or_default().to_owned();
        let name = |id: &str| vars.name_of(id).unwrap_or(id).to_owned();
        if event["tenantId"] != tenant_id {
            let whose = event["tenantId"]
                .as_str()
                .map_or_else(|| event["tenantId"].to_string(), name);
            findings.push(format!(
                "LEAK: {who} received {kind} about {} of {whose}, another tenant: {}",
                name(&subject),
                short(event)
            ));
            continue;
        }
        let routes = crate::contract::active().routes_for(kind);
        if !routes.iter().any(|a| a == conn.app) {
            findings.push(format!(
                "{who} received {kind}, which the routing table sends to {} only: {}",
                routes.join(", "),
                short(event)
            ));
            continue;
        }
        let id = event["id"].as_str().unwrap_or_default().to_owned();
        *by_id.entry(id.clone()).or_default() += 1;
        by_subject
            .entry((kind.to_owned(), subject.clone()))
            .or_default()
            .insert(id);
        let known = required
            .iter()
            .chain(optional)
            .any(|(e, s)| e.kind == kind && *s == subject);
        if !known {
            findings.push(format!(
                "{who} received {kind} about {}, which nothing of the case caused: {}",
                name(&subject),
                short(event)
            ));
        }
    }
    for (id, n) in by_id.iter().filter(|(_, n)| **n > 1) {
        findings.push(format!("{who} received event {id} {n} times, not once"));
    }
    for ((kind, subject), ids) in by_subject.iter().filter(|(_, ids)| ids.len() > 1) {
        findings.push(format!(
            "{who} received {kind} about {} {} times (event ids {}), not once",
            vars.name_of(subject).unwrap_or(subject),
            ids.len(),
            ids.iter().cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    for (e, id) in required {
        if !frames.iter().any(|f| about(f, e.kind, id)) {
            let got: Vec<String> = frames
                .iter()
                .filter(|f| f["type"] == "event")
                .map(|f| format!("{} about {}", f["event"]["type"], f["event"]["data"]["id"]))
                .collect();
            findings.push(format!(
                "{who} did not receive {} about {} within {:?} (received: {})",
                e.kind,
                e.entity.var(),
                waits.events,
                if got.is_empty() {
                    "nothing".to_owned()
                } else {
                    got.join("; ")
                }
            ));
        }
    }
    findings
}
