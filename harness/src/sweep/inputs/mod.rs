//! The `inputs` class (see the table in [`super`]): every field and
//! parameter of every operation, given what a careless or hostile client
//! sends.
//!
//! For each operation with a JSON body or parameters, as an app of the
//! matrix that holds its permission, in a tenant of the operation's own:
//!
//! 1. its example is made valid (the objects it refers to, `x-tekup-ref`,
//!    made first through their own operations' examples) and must be
//!    accepted;
//! 2. then one thing at a time changes ([`cases`]): a field missing, null,
//!    of the wrong type, empty, oversized, with control characters, a lone
//!    surrogate, bidi marks, SQL, HTML or path traversal; boundary, huge
//!    and fractional numbers; unknown fields; another tenant's id in every
//!    reference; malformed JSON and the wrong content type; bad query and
//!    path values;
//! 3. each answer is judged ([`send::judge`]): never a 5xx or a hang (10 s),
//!    a refusal in the platform's error shape, a 4xx where the schema or a
//!    text rule ([`fields`]) refuses the value, the contract's status for
//!    another tenant's id, nothing of the other tenant in any answer, and
//!    (as superuser, where the deployment allows) no row stored by a
//!    refused write of an operation with `x-tekup-store`;
//! 4. a failing case shrinks ([`shrink`]) to the mutation alone on the
//!    example without the optional fields that play no part, printed as a
//!    `curl` line and a scenario step.
//!
//! The rows a refused write must not add are counted before and after it,
//! so an operation's cases go one after another in its tenant, where
//! nothing else writes (the jobs its fixtures queued are waited for
//! first); the operations run side by side, [`IN_FLIGHT`] at a time.
//! Admin operations with a body ([`admin`]) must refuse every body, even a
//! malformed one, without the admin token before reading it.

mod admin;
mod cases;
mod fields;
mod fixtures;
mod params;
mod send;
mod shrink;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::stream::{self, StreamExt};

use self::cases::{Base, Case, Expect};
use self::fields::FieldPath;
use self::fixtures::{app_for, Fixtures};
use self::send::{Caller, Fault, Got, Request, Verdict};
use super::{ClassReport, Operation, Repro, Security, Target};
use crate::env::error_chain;

/// Operations swept at once.
const IN_FLIGHT: usize = 8;
/// Each tenant's rate limit: far above what the sweep sends, so a 429 is
/// never the sweep's own doing.
const RATE_LIMIT: u32 = 1_000_000;
/// How long the jobs the fixtures queued may take to settle.
const SETTLE_WITHIN: Duration = Duration::from_secs(30);

/// A finding before it is recorded.
type Found = (String, String, String, Option<Repro>);

/// What every operation's sweep shares.
#[derive(Debug)]
struct Ctx<'a> {
    target: &'a Target,
    error_schema: jsonschema::Validator,
    /// The other tenant's ids and emails, and its id.
    markers: BTreeSet<String>,
    counter: AtomicUsize,
}

impl Ctx<'_> {
    fn tag(&self) -> String {
        format!("c{}", self.counter.fetch_add(1, Ordering::Relaxed))
    }

    /// The markers `request` does not carry itself (echoing what the
    /// caller sent shows nothing it did not know).
    fn markers_for(&self, request: &Request) -> BTreeSet<&str> {
        let body = request.body.as_deref().unwrap_or("");
        self.markers
            .iter()
            .map(String::as_str)
            .filter(|m| !request.path.contains(m) && !body.contains(m))
            .collect()
    }
}

/// One operation, ready to sweep.
#[derive(Debug)]
struct Plan<'a> {
    op: &'a Operation,
    caller: Caller,
    tenant: String,
    base: Base,
    cases: Vec<Case>,
    /// Its store, counted as superuser around each refused write.
    store: Option<(&'a sqlx::PgPool, String)>,
}

pub(super) async fn sweep(target: &Target, report: &mut ClassReport) {
    let error_schema = match jsonschema::validator_for(&target.contract.error.schema) {
        Ok(v) => v,
        Err(e) => {
            report.skipped = Some(format!("the contract's error.schema does not compile: {e}"));
            return;
        }
    };
    let mut found: Vec<Found> = Vec::new();
    let swept: Vec<(&Operation, &str)> = target
        .operations
        .list
        .iter()
        .filter(|op| takes_input(op))
        .filter_map(|op| Some((op, app_for(target.contract, op)?)))
        .collect();
    let admin_ops: Vec<&Operation> = target
        .operations
        .list
        .iter()
        .filter(|op| op.security == Security::Admin && op.body_schema.is_some())
        .collect();
    if swept.is_empty() && admin_ops.is_empty() {
        report.skipped = Some("no tenant or admin operation takes a body or parameters".into());
        return;
    }
    let platform = &target.platform;
    let other = match platform
        .create_tenant_with_rate_limit("inputs-other", RATE_LIMIT)
        .await
    {
        Ok(t) => t,
        Err(e) => {
            report.skipped = Some(format!("failed to make a tenant: {}", error_chain(&e)));
            return;
        }
    };
    let mut fixtures = Fixtures::new(platform, target.contract, &target.operations);
    let mut foreign = BTreeMap::new();
    let references: BTreeSet<String> = swept.iter().flat_map(|(op, _)| references(op)).collect();
    for reference in &references {
        match fixtures.object(&other, reference, true, 0).await {
            Ok(id) => {
                foreign.insert(reference.clone(), id);
            }
            Err(e) => found.push((
                reference.clone(),
                format!("no object of `{reference}` for another tenant"),
                e,
                None,
            )),
        }
    }
    let mut plans = Vec::new();
    for (op, app) in swept {
        let tenant = match platform
            .create_tenant_with_rate_limit(&format!("inputs-{}", op.operation_id), RATE_LIMIT)
            .await
        {
            Ok(t) => t,
            Err(e) => {
                found.push((
                    op.label(),
                    "no tenant to sweep it in".into(),
                    error_chain(&e),
                    None,
                ));
                continue;
            }
        };
        let base = match fixtures.base(op, &tenant, false, 0).await {
            Ok(b) => b,
            Err(e) => {
                found.push((
                    op.label(),
                    "its valid request cannot be made".into(),
                    e,
                    None,
                ));
                continue;
            }
        };
        let cases = match cases::generate(op, &base, &foreign, target.size) {
            Ok(c) => c,
            Err(e) => {
                found.push((op.label(), "its schema cannot be read".into(), e, None));
                continue;
            }
        };
        let store = match (&op.store, &target.superuser) {
            (Some(table), Some(pool)) if op.is_write() => {
                match send::count_rows(pool, table, &tenant.id).await {
                    Ok(_) => Some((pool, table.clone())),
                    Err(e) => {
                        found.push((op.label(), "its store cannot be read".into(), e, None));
                        None
                    }
                }
            }
            _ => None,
        };
        report.operations.insert(op.label());
        plans.push(Plan {
            op,
            caller: Caller::Tenant {
                tenant: tenant.clone(),
                app: app.to_owned(),
            },
            tenant: tenant.id,
            base,
            cases,
            store,
        });
    }
    if plans.iter().any(|p| p.store.is_some()) {
        if let Err(e) = settle(target).await {
            found.push((
                "queues".into(),
                format!(
                    "the jobs of the sweep's fixtures did not settle within {} s",
                    SETTLE_WITHIN.as_secs()
                ),
                e,
                None,
            ));
        }
    }
    let ctx = Ctx {
        target,
        error_schema,
        markers: fixtures.markers.clone(),
        counter: AtomicUsize::new(0),
    };
    let results: Vec<(usize, Vec<Found>)> = stream::iter(plans.iter())
        .map(|plan| sweep_op(&ctx, plan))
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    for (cases, f) in results {
        report.cases += cases;
        found.extend(f);
    }
    for op in admin_ops {
        report.operations.insert(op.label());
        let (cases, f) = admin::sweep(&ctx, op).await;
        report.cases += cases;
        found.extend(f);
    }
    found.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    for (operation, title, detail, repro) in found {
        report.found(operation, title, detail, repro);
    }
}

/// Whether `op` is a tenant's and takes a JSON body or parameters (the
/// gateway's handshake, answered 101, is the `access` class's).
fn takes_input(op: &Operation) -> bool {
    matches!(op.security, Security::Tenant { .. })
        && !op.responses.iter().any(|s| s == "101")
        && (op.body_schema.is_some()
            || op
                .params
                .iter()
                .any(|p| p.location == "path" || p.location == "query"))
}

/// The references of `op`'s body fields and parameters.
fn references(op: &Operation) -> Vec<String> {
    let mut out: Vec<String> = op
        .params
        .iter()
        .filter_map(|p| p.reference.clone())
        .collect();
    if let Some(schema) = &op.body_schema {
        let example = op.body_example.clone().unwrap_or_default();
        out.extend(
            fields::fields(schema, &example)
                .into_iter()
                .filter_map(|f| f.reference),
        );
    }
    out
}

/// Waits until no queue holds work (the jobs the fixtures queued write
/// into the tenants' stores); a platform whose `/admin/queues` lists no
/// queues is not waited for.
async fn settle(target: &Target) -> Result<(), String> {
    target
        .platform
        .wait_queues_idle(&[crate::platform::TENANT_SERVICE], None, SETTLE_WITHIN)
        .await
        .map(drop)
}

/// Sends `case` (none: the valid request) without the fields of
/// `dropped`, judges the answer and, for a refused write with a store,
/// whether it stored rows.
async fn probe(
    ctx: &Ctx<'_>,
    plan: &Plan<'_>,
    case: Option<&Case>,
    dropped: &[FieldPath],
) -> (Request, Got, Option<Verdict>) {
    let request = send::render(plan.op, &plan.base, case, dropped, &ctx.tag());
    let before = match &plan.store {
        Some((pool, table)) => send::count_rows(pool, table, &plan.tenant).await.ok(),
        None => None,
    };
    let got = send::send(ctx.target, &plan.op.service, &plan.caller, &request).await;
    let (label, expect) = match case {
        Some(c) => (c.label.as_str(), &c.expect),
        None => ("the example", &Expect::Either),
    };
    let markers = ctx.markers_for(&request);
    let mut verdict = send::judge(
        ctx.target.contract,
        &ctx.error_schema,
        label,
        expect,
        &got,
        &markers,
    );
    if let (
        None,
        Got::Answer {
            status: 400..=499, ..
        },
        Some((pool, table)),
        Some(before),
    ) = (&verdict, &got, &plan.store, before)
    {
        if let Ok(after) = send::count_rows(pool, table, &plan.tenant).await {
            if after != before {
                verdict = Some(Verdict {
                    fault: Fault::Stored,
                    title: format!(
                        "`{label}` was refused but stored {} row(s) in {table}",
                        after - before
                    ),
                    detail: "a refused write changes nothing".into(),
                });
            }
        }
    }
    (request, got, verdict)
}

/// Sweeps one operation: its example, then its cases one after another.
async fn sweep_op(ctx: &Ctx<'_>, plan: &Plan<'_>) -> (usize, Vec<Found>) {
    let op = plan.op;
    let mut found = Vec::new();
    let (request, got, verdict) = probe(ctx, plan, None, &[]).await;
    let accepted = matches!(
        got,
        Got::Answer {
            status: 200..=299,
            ..
        }
    );
    if verdict.is_some() || !accepted {
        let detail = match (&verdict, &got) {
            (Some(v), _) => v.detail.clone(),
            (None, Got::Answer { status, text, .. }) => {
                format!("got {status}: {}", fixtures::shorten(text))
            }
            (None, _) => String::new(),
        };
        found.push((
            op.label(),
            "its example is not accepted, so its cases were not tried".into(),
            format!("the document promises an example the service accepts; {detail}"),
            Some(send::repro(ctx.target, &op.service, &plan.caller, &request)),
        ));
        return (1, found);
    }
    let mut sent = 1;
    for case in &plan.cases {
        let (request, _, verdict) = probe(ctx, plan, Some(case), &[]).await;
        sent += 1;
        let Some(verdict) = verdict else { continue };
        let (request, tries) = shrunk(ctx, plan, case, &verdict.fault, request).await;
        sent += tries;
        found.push((
            op.label(),
            verdict.title,
            verdict.detail,
            Some(send::repro(ctx.target, &op.service, &plan.caller, &request)),
        ));
    }
    (sent, found)
}

/// The smallest request failing as `case` did (with `fault`), and the
/// requests it took.
async fn shrunk(
    ctx: &Ctx<'_>,
    plan: &Plan<'_>,
    case: &Case,
    fault: &Fault,
    original: Request,
) -> (Request, usize) {
    let Some((schema, body)) = plan.op.body_schema.as_ref().zip(plan.base.body.as_ref()) else {
        return (original, 0);
    };
    let optional: Vec<FieldPath> = fields::fields(schema, body)
        .into_iter()
        .filter(|f| !f.required && f.path.get(body).is_some())
        .filter(|f| match &case.field {
            Some(changed) => !changed.starts_with(&f.path) && !f.path.starts_with(changed),
            None => true,
        })
        .map(|f| f.path)
        .collect();
    let tries = AtomicUsize::new(0);
    let dropped = shrink::shrink(&optional, |dropped: Vec<FieldPath>| {
        let tries = &tries;
        async move {
            tries.fetch_add(1, Ordering::Relaxed);
            let (_, _, v) = probe(ctx, plan, Some(case), &dropped).await;
            v.is_some_and(|v| v.fault == *fault)
        }
    })
    .await;
    let tries = tries.into_inner();
    if dropped.is_empty() {
        return (original, tries);
    }
    let (request, _, verdict) = probe(ctx, plan, Some(case), &dropped).await;
    if verdict.is_some_and(|v| v.fault == *fault) {
        (request, tries + 1)
    } else {
        (original, tries + 1)
    }
}

#[cfg(test)]
mod tests;
