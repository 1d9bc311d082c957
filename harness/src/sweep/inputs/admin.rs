//! Admin operations with a body (`POST /admin/tenants`): without the admin
//! token every body, malformed or not, is refused with the contract's
//! `missing-credentials` status, so a caller without the token learns
//! nothing of how the body is read; with it, the body's fields get the
//! same cases as a tenant's operation.

use std::collections::BTreeMap;

use serde_json::Value;

use super::cases::{self, Base, Case, Expect, Mutation};
use super::send::{self, Caller};
use super::{Ctx, Found};
use crate::sweep::Operation;

pub(super) async fn sweep(ctx: &Ctx<'_>, op: &Operation) -> (usize, Vec<Found>) {
    let target = ctx.target;
    let mut found = Vec::new();
    let mut sent = 0;
    let base = Base {
        body: op.body_example.clone(),
        ..Base::default()
    };
    let Some(example) = &base.body else {
        found.push((
            op.label(),
            "its body has no example".into(),
            "every request body schema has an example the service accepts".into(),
            None,
        ));
        return (0, found);
    };
    let text = example.to_string();
    let tokenless = [
        (
            "a malformed body",
            Mutation::Body {
                raw: text[..text.len() / 2].to_owned(),
            },
        ),
        (
            "a text/plain body",
            Mutation::ContentType("text/plain".into()),
        ),
        ("its example", Mutation::Body { raw: text.clone() }),
    ];
    let statuses = target.contract.statuses("missing-credentials");
    for (caller, who) in [
        (Caller::Admin { token: None }, "no admin token"),
        (
            Caller::Admin {
                token: Some("not-the-admin-token".into()),
            },
            "a wrong admin token",
        ),
    ] {
        for (what, mutation) in &tokenless {
            let case = Case {
                label: format!("{what} with {who}"),
                mutation: mutation.clone(),
                expect: Expect::Either,
                field: None,
            };
            let request = send::render(op, &base, Some(&case), &[], &ctx.tag());
            let got = send::send(target, &op.service, &caller, &request).await;
            sent += 1;
            let markers = ctx.markers_for(&request);
            let verdict = send::judge(
                target.contract,
                &ctx.error_schema,
                &case.label,
                &case.expect,
                &got,
                &markers,
            );
            let status = match &got {
                send::Got::Answer { status, .. } => Some(*status),
                _ => None,
            };
            let title = match (verdict, status) {
                (Some(v), _) => Some(v.title),
                (None, Some(s)) if !statuses.contains(&s) => Some(format!(
                    "`{}` answered {s}, not {statuses:?} (missing-credentials)",
                    case.label
                )),
                _ => None,
            };
            if let Some(title) = title {
                found.push((
                    op.label(),
                    title,
                    "the admin token is checked before the body is read".into(),
                    Some(send::repro(target, &op.service, &caller, &request)),
                ));
            }
        }
    }
    let Ok(token) = target.secret("admin-token") else {
        return (sent, found);
    };
    let caller = Caller::Admin {
        token: Some(token.to_owned()),
    };
    let cases = match cases::generate(op, &base, &BTreeMap::new(), target.size) {
        Ok(c) => c,
        Err(e) => {
            found.push((op.label(), "its schema cannot be read".into(), e, None));
            return (sent, found);
        }
    };
    for case in cases {
        let mut request = send::render(op, &base, Some(&case), &[], &ctx.tag());
        if case
            .field
            .as_ref()
            .is_none_or(|f| f.0.len() != 1 || f.key() != "id")
        {
            unique_ids(&mut request, sent);
        }
        let got = send::send(target, &op.service, &caller, &request).await;
        sent += 1;
        let markers = ctx.markers_for(&request);
        if let Some(v) = send::judge(
            target.contract,
            &ctx.error_schema,
            &case.label,
            &case.expect,
            &got,
            &markers,
        ) {
            found.push((
                op.label(),
                v.title,
                v.detail,
                Some(send::repro(target, &op.service, &caller, &request)),
            ));
        }
    }
    (sent, found)
}

/// The example's `id` made unique per request, so an accepted case is not
/// refused as a duplicate of the one before.
fn unique_ids(request: &mut send::Request, n: usize) {
    let Some(body) = &request.body else { return };
    let Ok(mut json) = serde_json::from_str::<Value>(body) else {
        return;
    };
    if let Some(Value::String(id)) = json.get("id") {
        let unique = format!(
            "{id}-{n}-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..6]
        );
        json["id"] = Value::String(unique);
        request.body = Some(json.to_string());
    }
}
