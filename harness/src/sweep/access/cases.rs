//! The access cases of one operation, each with the status the contract's
//! matrix and tenancy rules imply (`error.statuses` of the contract).

use crate::platform::TenantKey;
use crate::sweep::{Operation, Security, Target};

use super::world::{admitted_apps, tenant_headers, World};

/// What a case must get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Expect {
    /// Let through: not 401, 403 or 404, and not 5xx (a 409 or 422 is the
    /// operation's own business, past the access decision).
    Admitted,
    /// Refused for `rule` (a name of the contract's `error.statuses`) with
    /// one of these statuses.
    Refused { rule: String, statuses: Vec<u16> },
}

/// One request of the access class.
#[derive(Debug, Clone)]
pub(super) struct Case {
    /// Who calls, as the report says it: `as voice-agent`, `with b's key and c's id`.
    pub what: String,
    pub headers: Vec<(String, String)>,
    /// Whose objects the operation's references take.
    pub owner: String,
    pub expect: Expect,
    /// The tenant and app to name in a scenario step, for a tenant's own call.
    pub step_as: Option<(String, String)>,
}

fn refused(t: &Target, rule: &str) -> Expect {
    Expect::Refused {
        rule: rule.to_owned(),
        statuses: t.contract.statuses(rule).to_vec(),
    }
}

/// The cases that must be refused, all made as tenant `c` (or with no
/// credentials at all): the caller is always `c`, so the stores of `c` can
/// be counted around them.
pub(super) fn refusals(t: &Target, w: &World, op: &Operation) -> Vec<Case> {
    match &op.security {
        Security::Public | Security::Webhook { .. } => Vec::new(),
        Security::Admin => admin_refusals(t, w),
        Security::Tenant { .. } => tenant_refusals(t, w, op),
    }
}

fn admin_refusals(t: &Target, w: &World) -> Vec<Case> {
    let case = |what: &str, headers: Vec<(String, String)>| Case {
        what: what.into(),
        headers,
        owner: w.c.id.clone(),
        expect: refused(t, "missing-credentials"),
        step_as: None,
    };
    vec![
        case("without the admin token", Vec::new()),
        case(
            "with a wrong admin token",
            vec![("authorization".into(), "Bearer not-the-admin-token".into())],
        ),
        case(
            "with a tenant's key as the admin token",
            vec![("authorization".into(), format!("Bearer {}", w.c.key))],
        ),
    ]
}

fn tenant_refusals(t: &Target, w: &World, op: &Operation) -> Vec<Case> {
    let c = &w.c;
    let h = &t.contract.headers;
    let admitted = admitted_apps(t, op);
    let mut cases = Vec::new();
    let mut case = |what: String, headers: Vec<(String, String)>, owner: &TenantKey, rule: &str| {
        cases.push(Case {
            what,
            headers,
            owner: owner.id.clone(),
            expect: refused(t, rule),
            step_as: None,
        });
    };
    // Every app of the contract that lacks the permission.
    for app in t.contract.apps.iter().filter(|a| !admitted.contains(a)) {
        case(
            format!("as {app}, which lacks the permission"),
            tenant_headers(t, c, app),
            c,
            "missing-permission",
        );
    }
    // A service's identity named by a tenant's key.
    for app in &t.contract.service_identities {
        case(
            format!("as the service identity {app} with a tenant's key"),
            tenant_headers(t, c, app),
            c,
            "service-identity-with-a-key",
        );
    }
    case(
        "as an app the tenant does not allow".into(),
        tenant_headers(t, c, "sweep-unknown-app"),
        c,
        "app-not-allowed-for-tenant",
    );
    let Some(app) = admitted.first() else {
        return cases;
    };
    let own = tenant_headers(t, c, app);
    let without = |name: &str| -> Vec<(String, String)> {
        own.iter().filter(|(n, _)| n != name).cloned().collect()
    };
    case(
        "with no credentials".into(),
        Vec::new(),
        c,
        "missing-credentials",
    );
    for name in [&h.tenant_key, &h.tenant_id, &h.source_app] {
        case(
            format!("without `{name}`"),
            without(name),
            c,
            "missing-credentials",
        );
    }
    let mut swapped = own.clone();
    swapped[0].1.clone_from(&w.b.key);
    case(
        "with b's key and c's tenant id".into(),
        swapped,
        c,
        "key-of-another-tenant",
    );
    let mut unknown = own.clone();
    unknown[0].1 = format!("tk_sweepunknown_{}", "A".repeat(32));
    case(
        "with a key that does not exist".into(),
        unknown,
        c,
        "unknown-or-revoked-key",
    );
    if let Some(revoked) = &w.c_revoked {
        case(
            "with a revoked key".into(),
            tenant_headers(t, revoked, app),
            c,
            "unknown-or-revoked-key",
        );
    }
    if let Some(s) = &w.suspended {
        case(
            "as a suspended tenant".into(),
            tenant_headers(t, s, app),
            c,
            "suspended-tenant",
        );
    }
    for (i, name) in [&h.tenant_key, &h.tenant_id, &h.source_app]
        .into_iter()
        .enumerate()
    {
        let mut twice = own.clone();
        let other = match i {
            0 => w.b.key.clone(),
            1 => w.b.id.clone(),
            _ => "sweep-unknown-app".to_owned(),
        };
        twice.push((name.clone(), other));
        case(
            format!("with `{name}` twice"),
            twice,
            c,
            "duplicated-credential-header",
        );
    }
    // Another tenant's objects in the path, with the caller's own credentials.
    if op
        .params
        .iter()
        .any(|p| p.location == "path" && p.reference.is_some())
    {
        case(
            "with b's object in the path".into(),
            own,
            &w.b,
            "object-of-another-tenant",
        );
    }
    cases
}

/// The cases that must be admitted: tenant `a` as every app that holds
/// what the operation needs.
pub(super) fn admissions(t: &Target, w: &World, op: &Operation) -> Vec<Case> {
    match &op.security {
        Security::Webhook { .. } => Vec::new(),
        Security::Public => vec![Case {
            what: "with no credentials (a public operation)".into(),
            headers: Vec::new(),
            owner: w.a.id.clone(),
            expect: Expect::Admitted,
            step_as: None,
        }],
        Security::Admin => {
            let token = t.secrets.get("admin-token").cloned().unwrap_or_default();
            vec![Case {
                what: "with the admin token".into(),
                headers: vec![("authorization".into(), format!("Bearer {token}"))],
                owner: w.a.id.clone(),
                expect: Expect::Admitted,
                step_as: None,
            }]
        }
        Security::Tenant { .. } => admitted_apps(t, op)
            .into_iter()
            .map(|app| Case {
                what: format!("as {app}, which holds the permission"),
                headers: tenant_headers(t, &w.a, &app),
                owner: w.a.id.clone(),
                expect: Expect::Admitted,
                step_as: Some(("a".into(), app)),
            })
            .collect(),
    }
}

/// Whether `status` meets `expect`.
pub(super) fn meets(expect: &Expect, status: u16) -> bool {
    match expect {
        Expect::Admitted => status != 0 && status < 500 && ![401, 403, 404].contains(&status),
        Expect::Refused { statuses, .. } => statuses.contains(&status),
    }
}
