//! The `access` class: who may call what, for whom.
//!
//! Every operation of the services' documents (the gateway's WebSocket
//! handshake and its room joins included) is tried as every app of the
//! contract, and with every way of being the wrong caller: another
//! tenant's key, a suspended tenant, a revoked or unknown key, a missing
//! or duplicated credential header, another tenant's object in the path,
//! no or a wrong admin token. Each case expects exactly the status the
//! contract's matrix and `error.statuses` imply, and the refusals carry the
//! contract's error body.
//!
//! Refusals run first, all as one quiet tenant (see [`world`]) whose stores
//! are counted before and after: a refused write that stored something
//! anyway is a finding even when its status was right. Then every app that
//! holds an operation's permission calls it as another tenant, and must be
//! let through.

mod cases;
mod request;
mod rooms;
mod world;

use std::collections::BTreeMap;
use std::time::Duration;

use futures::stream::{self, StreamExt};
use serde_json::Value;

use super::{ClassReport, Operation, Repro, Security, Target};
use cases::{Case, Expect};
use world::World;

/// Requests in flight at once.
const IN_FLIGHT: usize = 8;
/// How long the platform may take to finish the work the set-up caused.
const SETTLE: Duration = Duration::from_secs(60);

pub(super) async fn sweep(t: &Target, report: &mut ClassReport) {
    let world = match World::make(t).await {
        Ok(w) => w,
        Err(e) => {
            report.found("setup", "the access cases could not be set up", e, None);
            return;
        }
    };
    report.notes.extend(world.notes.iter().cloned());
    if let Err(e) = world::settle(t, SETTLE).await {
        report.notes.push(format!(
            "the stores of the refused writes were not counted: {e}"
        ));
    }
    let ops = operations(t);
    let tables = stores(&ops);
    let before = count_rows(t, &tables, &[&world.b.id, &world.c.id]).await;

    let refusals: Vec<(&Operation, Case)> = ops
        .iter()
        .flat_map(|op| {
            cases::refusals(t, &world, op)
                .into_iter()
                .map(move |c| (op, c))
        })
        .collect();
    run_all(t, &world, refusals, report).await;

    if let (Some(before), Some(after)) = (
        before,
        count_rows(t, &tables, &[&world.b.id, &world.c.id]).await,
    ) {
        for (key, n) in &after {
            let was = before.get(key).copied().unwrap_or(0);
            if *n != was {
                report.found(
                    format!("database {}", key.0),
                    format!("refused requests stored {} rows in {} for tenant {}", n - was, key.0, key.1),
                    "every refusal of the access cases must change nothing; count the tenant's rows before and after them",
                    None,
                );
            }
        }
    }

    let admissions: Vec<(&Operation, Case)> = ops
        .iter()
        .flat_map(|op| {
            cases::admissions(t, &world, op)
                .into_iter()
                .map(move |c| (op, c))
        })
        .collect();
    run_all(t, &world, admissions, report).await;

    rooms::sweep(t, &world, report).await;
}

/// The documents' operations, and the gateway's handshake as the contract
/// states it when no document names it.
fn operations(t: &Target) -> Vec<Operation> {
    let gw = &t.contract.gateway;
    let mut ops = t.operations.list.clone();
    if !ops.iter().any(|o| is_handshake(t, o)) {
        ops.push(Operation {
            service: gw.service.clone(),
            method: "GET".into(),
            path: gw.path.clone(),
            operation_id: "connectEvents".into(),
            security: Security::Tenant { permission: None },
            params: Vec::new(),
            body_schema: None,
            body_example: None,
            responses: vec!["101".into()],
            store: None,
        });
    }
    ops
}

fn is_handshake(t: &Target, op: &Operation) -> bool {
    op.service == t.contract.gateway.service
        && op.path == t.contract.gateway.path
        && op.method == "GET"
}

/// One case that did not get what it should.
struct Miss {
    op: String,
    rule: String,
    what: String,
    status: u16,
    answer: String,
    expected: String,
    repro: Repro,
}

async fn run_all(t: &Target, w: &World, cases: Vec<(&Operation, Case)>, report: &mut ClassReport) {
    report.cases += cases.len();
    for (op, _) in &cases {
        report.operations.insert(op.label());
    }
    let misses: Vec<Miss> = stream::iter(cases)
        .map(|(op, case)| run_case(t, w, op, case))
        .buffer_unordered(IN_FLIGHT)
        .filter_map(|m| async { m })
        .collect()
        .await;
    // One finding per operation and rule: a missing check shows on every
    // app at once, and the first case says it.
    let mut grouped: BTreeMap<(String, String), Vec<Miss>> = BTreeMap::new();
    for m in misses {
        grouped
            .entry((m.op.clone(), m.rule.clone()))
            .or_default()
            .push(m);
    }
    for ((op, _), misses) in grouped {
        let first = &misses[0];
        let mut detail = format!(
            "expected {}, got {}: {}",
            first.expected, first.status, first.answer
        );
        if misses.len() > 1 {
            let others: Vec<String> = misses[1..]
                .iter()
                .map(|m| format!("{} ({})", m.what, m.status))
                .collect();
            detail.push_str(&format!("\nalso: {}", others.join("; ")));
        }
        report.found(
            op,
            format!("{}: answered {}", first.what, first.status),
            detail,
            Some(first.repro.clone()),
        );
    }
}

async fn run_case(t: &Target, w: &World, op: &Operation, case: Case) -> Option<Miss> {
    let fill = |r: &str| w.object(r, &case.owner);
    let (rule, expected) = match &case.expect {
        Expect::Admitted => (
            "admitted".to_owned(),
            "to be let through (not 401, 403, 404 or 5xx)".to_owned(),
        ),
        Expect::Refused { rule, statuses } => (
            rule.clone(),
            format!(
                "{} ({rule})",
                statuses
                    .iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
        ),
    };
    let miss = |status: u16, answer: String, repro: Repro| Miss {
        op: op.label(),
        rule: rule.clone(),
        what: case.what.clone(),
        status,
        answer,
        expected: expected.clone(),
        repro,
    };
    if is_handshake(t, op) {
        let (result, repro) = request::handshake(t, &case.headers).await;
        let (status, answer) = match result {
            Ok(mut ws) => {
                let _ = ws.close(None).await;
                (101, "the connection was opened".to_owned())
            }
            Err((status, body)) => (status, body),
        };
        let ok = match &case.expect {
            Expect::Admitted => status == 101,
            other => cases::meets(other, status),
        };
        return (!ok).then(|| miss(status, answer, repro));
    }
    let built = match request::build(op, &fill) {
        Ok(b) => b,
        Err(e) => {
            let base = t.platform.url(&op.service).unwrap_or_default().to_owned();
            return Some(miss(
                0,
                format!("the request could not be made: {e}"),
                Repro::new(&op.service, &base, &op.method, &op.path),
            ));
        }
    };
    let (got, mut repro) = request::send(t, &built, &case.headers).await;
    repro.tenant = case.step_as.clone();
    let answer = got.error.clone().unwrap_or_else(|| shorten(&got.body));
    if !cases::meets(&case.expect, got.status) {
        return Some(miss(got.status, answer, repro));
    }
    if matches!(case.expect, Expect::Refused { .. }) {
        if let Some(why) = error_shape(t, &got.body) {
            return Some(Miss {
                rule: "error-shape".into(),
                ..miss(
                    got.status,
                    format!("the refusal's body is not the platform's error shape: {why}"),
                    repro,
                )
            });
        }
    }
    None
}

/// Why `body` is not the contract's error body, if it is not.
fn error_shape(t: &Target, body: &Value) -> Option<String> {
    let validator = jsonschema::validator_for(&t.contract.error.schema).ok()?;
    let first = validator.iter_errors(body).next().map(|e| e.to_string());
    first.map(|e| format!("{e}: {}", shorten(body)))
}

fn shorten(body: &Value) -> String {
    let text = body.to_string();
    if text.chars().count() > 300 {
        format!("{}…", text.chars().take(300).collect::<String>())
    } else {
        text
    }
}

/// The store tables the operations name (checked to be `schema.table`).
fn stores(ops: &[Operation]) -> Vec<String> {
    let mut tables: Vec<String> = ops
        .iter()
        .filter_map(|o| o.store.clone())
        .filter(|s| {
            s.split('.').count() == 2
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.')
        })
        .collect();
    tables.sort();
    tables.dedup();
    tables
}

/// Rows per (table, tenant), as superuser; None without database access.
async fn count_rows(
    t: &Target,
    tables: &[String],
    tenants: &[&str],
) -> Option<BTreeMap<(String, String), i64>> {
    let db = t.superuser.as_ref()?;
    let mut out = BTreeMap::new();
    for table in tables {
        for tenant in tenants {
            let sql = format!("SELECT count(*) FROM {table} WHERE tenant_id = $1");
            let n: i64 = sqlx::query_scalar(&sql)
                .bind(*tenant)
                .fetch_one(db)
                .await
                .ok()?;
            out.insert((table.clone(), (*tenant).to_owned()), n);
        }
    }
    Some(out)
}
