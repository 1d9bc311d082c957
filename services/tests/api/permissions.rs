//! The permission matrix, row by row, and every way authentication fails.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{json, Value};
use tekup_services::auth::grants::{Grants, ANY_SERVICE};
use tekup_services::auth::token::TokenKeys;
use tekup_services::ServiceName::{self, CrmApi, FlowApi, SecurePlatform};
use uuid::Uuid;

use crate::helpers::{
    assert_status, error_code, TestApp, ACME_KEY, ACME_REVOKED_KEY, GLOBEX_KEY, INITECH_KEY,
    TOKEN_SECRET, UMBRELLA_KEY,
};

/// One endpoint and the permission it needs.
struct Endpoint {
    service: ServiceName,
    method: Method,
    path: String,
    body: Option<Value>,
    permission: &'static str,
}

fn endpoints() -> Vec<Endpoint> {
    let id = Uuid::new_v4();
    let e = |service, method, path: &str, body: Option<Value>, permission| Endpoint {
        service,
        method,
        path: path.to_owned(),
        body,
        permission,
    };
    let mut all = vec![
        e(
            FlowApi,
            Method::POST,
            "/leads",
            Some(json!({ "firstName": "P", "email": format!("{id}@perm.test") })),
            "write:leads",
        ),
        e(FlowApi, Method::GET, "/leads", None, "read:leads"),
        e(
            FlowApi,
            Method::GET,
            &format!("/leads/{id}"),
            None,
            "read:leads",
        ),
        e(
            FlowApi,
            Method::PATCH,
            &format!("/leads/{id}"),
            Some(json!({ "status": "lost" })),
            "write:leads",
        ),
        e(
            FlowApi,
            Method::POST,
            "/activities",
            Some(json!({ "type": "NOTE", "entityType": "lead" })),
            "write:activities",
        ),
        e(FlowApi, Method::GET, "/activities", None, "read:activities"),
        e(
            FlowApi,
            Method::POST,
            "/compliance/report",
            Some(json!({ "severity": "low", "summary": "s" })),
            "write:incidents",
        ),
        e(
            FlowApi,
            Method::GET,
            "/compliance/reports",
            None,
            "read:compliance",
        ),
        e(
            CrmApi,
            Method::POST,
            "/contacts",
            Some(json!({ "email": format!("{id}@perm.test") })),
            "write:contacts",
        ),
        e(CrmApi, Method::GET, "/contacts", None, "read:contacts"),
        e(
            CrmApi,
            Method::GET,
            &format!("/contacts/{id}"),
            None,
            "read:contacts",
        ),
        e(
            CrmApi,
            Method::POST,
            "/contacts/sync",
            Some(json!({ "contacts": [] })),
            "write:contacts",
        ),
        e(
            CrmApi,
            Method::POST,
            &format!("/contacts/{id}/leads"),
            Some(json!({ "leadId": id })),
            "write:contacts",
        ),
        e(
            CrmApi,
            Method::POST,
            "/deals",
            Some(json!({ "title": "d", "amount": 1, "currency": "eur" })),
            "write:deals",
        ),
        e(CrmApi, Method::GET, "/deals", None, "read:deals"),
        e(
            CrmApi,
            Method::POST,
            &format!("/deals/{id}/won"),
            None,
            "write:deals",
        ),
        e(
            SecurePlatform,
            Method::POST,
            "/incidents",
            Some(json!({ "title": "t", "severity": "low" })),
            "write:incidents",
        ),
        e(
            SecurePlatform,
            Method::GET,
            "/incidents",
            None,
            "read:security",
        ),
        // These answer 503 here (no Gemini, no queue configured): past the permission check.
        e(
            FlowApi,
            Method::POST,
            "/voice/execute",
            Some(json!({ "transcript": "show me leads" })),
            "execute:voice",
        ),
        e(CrmApi, Method::POST, "/emails/sync", None, "sync:emails"),
        e(
            SecurePlatform,
            Method::POST,
            &format!("/incidents/{id}/resolve"),
            None,
            "write:incidents",
        ),
    ];
    for service in ServiceName::APIS {
        all.push(e(
            service,
            Method::GET,
            "/dashboard/metrics",
            None,
            "read:metrics",
        ));
        all.push(e(
            service,
            Method::GET,
            "/analytics",
            None,
            "read:analytics",
        ));
    }
    all
}

/// Every (app, service, permission) of the matrix, with `*` expanded.
fn matrix_rows(grants: &Grants) -> BTreeSet<(String, ServiceName, String)> {
    grants
        .rows()
        .flat_map(|(app, service, perm)| {
            let services: Vec<ServiceName> = if service == ANY_SERVICE {
                ServiceName::APIS.to_vec()
            } else {
                ServiceName::parse(service).into_iter().collect()
            };
            services
                .into_iter()
                .map(move |s| (app.to_owned(), s, perm.to_owned()))
        })
        .collect()
}

#[tokio::test]
async fn each_app_is_allowed_exactly_what_the_matrix_grants() {
    let app = TestApp::spawn().await;
    let grants = Grants::load(&app.service_pool).await.unwrap();
    let rows = matrix_rows(&grants);
    // The platform's six apps, as acme allows them (the `flow-api` row is for cross-app tokens).
    let allowed: Vec<String> =
        sqlx::query_scalar("SELECT unnest(allowed_apps) FROM auth.tenants WHERE id = 'acme'")
            .fetch_all(&app.admin)
            .await
            .unwrap();
    let apps: BTreeSet<&str> = allowed.iter().map(String::as_str).collect();
    assert_eq!(apps.len(), 6, "{apps:?}");

    let mut exercised = BTreeSet::new();
    let mut failures = Vec::new();
    for app_name in &apps {
        let caller = app.as_app(ACME_KEY, "acme", app_name);
        for ep in endpoints() {
            let allowed = grants.allows(app_name, ep.service, ep.permission);
            let reply = caller
                .send(ep.service, ep.method.clone(), &ep.path, ep.body.clone())
                .await;
            let status = reply.status.as_u16();
            let ok = if allowed {
                exercised.insert(((*app_name).to_owned(), ep.service, ep.permission.to_owned()));
                status != 401 && status != 403 && status != 500
            } else {
                status == 403
                    && error_code(&reply) == "forbidden"
                    && reply.json["error"]["message"]
                        .as_str()
                        .unwrap()
                        .contains(ep.permission)
            };
            if !ok {
                failures.push(format!(
                    "{app_name} {} {}{} (needs {}, {}): {status} {}",
                    ep.method,
                    ep.service,
                    ep.path,
                    ep.permission,
                    if allowed { "granted" } else { "not granted" },
                    reply.json
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "permission matrix violated:\n{}",
        failures.join("\n")
    );

    // Every (app, permission) of the matrix was exercised as allowed on some
    // service (`*` grants apply where a service has such an endpoint).
    let granted: BTreeSet<(&str, &str)> = rows
        .iter()
        .filter(|(a, _, _)| apps.contains(a.as_str()))
        .map(|(a, _, p)| (a.as_str(), p.as_str()))
        .collect();
    let used: BTreeSet<(&str, &str)> = exercised
        .iter()
        .map(|(a, _, p)| (a.as_str(), p.as_str()))
        .collect();
    let missing: BTreeSet<_> = granted.difference(&used).copied().collect();
    assert!(
        missing.is_empty(),
        "matrix rows no endpoint exercised: {missing:?}"
    );
}

#[tokio::test]
async fn bad_credentials_are_refused_with_the_reason() {
    let app = TestApp::spawn().await;
    // (case, headers, status, what the message names)
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, u16, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (
            "no key",
            vec![("x-tenant-id", "acme"), ("x-source-app", "flow-web")],
            401,
            "missing credentials",
        ),
        (
            "no tenant id",
            vec![("x-tenant-key", ACME_KEY), ("x-source-app", "flow-web")],
            401,
            "x-tenant-id",
        ),
        (
            "no source app",
            vec![("x-tenant-key", ACME_KEY), ("x-tenant-id", "acme")],
            401,
            "x-source-app",
        ),
        (
            "malformed key",
            vec![
                ("x-tenant-key", "letmein"),
                ("x-tenant-id", "acme"),
                ("x-source-app", "flow-web"),
            ],
            401,
            "malformed",
        ),
        (
            "wrong secret",
            vec![
                (
                    "x-tenant-key",
                    "tk_acmekey1_WrongSecretWrongSecretWrongSecret",
                ),
                ("x-tenant-id", "acme"),
                ("x-source-app", "flow-web"),
            ],
            401,
            "invalid API key",
        ),
        (
            "unknown key id",
            vec![
                (
                    "x-tenant-key",
                    "tk_nosuchkey_AcmeTestSecretNotForProduction01",
                ),
                ("x-tenant-id", "acme"),
                ("x-source-app", "flow-web"),
            ],
            401,
            "invalid API key",
        ),
        (
            "revoked key",
            vec![
                ("x-tenant-key", ACME_REVOKED_KEY),
                ("x-tenant-id", "acme"),
                ("x-source-app", "flow-web"),
            ],
            401,
            "inactive",
        ),
        (
            "suspended tenant",
            vec![
                ("x-tenant-key", INITECH_KEY),
                ("x-tenant-id", "initech"),
                ("x-source-app", "flow-web"),
            ],
            403,
            "inactive",
        ),
        (
            "app not allowed",
            vec![
                ("x-tenant-key", UMBRELLA_KEY),
                ("x-tenant-id", "umbrella"),
                ("x-source-app", "crm-web"),
            ],
            403,
            "not allowed",
        ),
        (
            "unknown app",
            vec![
                ("x-tenant-key", ACME_KEY),
                ("x-tenant-id", "acme"),
                ("x-source-app", "evil-app"),
            ],
            403,
            "not allowed",
        ),
        (
            "a service's identity with a tenant key",
            vec![
                ("x-tenant-key", ACME_KEY),
                ("x-tenant-id", "acme"),
                ("x-source-app", "worker"),
            ],
            403,
            "service identity",
        ),
        (
            "tenant id of another",
            vec![
                ("x-tenant-key", GLOBEX_KEY),
                ("x-tenant-id", "acme"),
                ("x-source-app", "flow-web"),
            ],
            403,
            "does not match",
        ),
        (
            // Which of two values counts would depend on the proxy in front.
            "tenant id twice",
            vec![
                ("x-tenant-key", ACME_KEY),
                ("x-tenant-id", "acme"),
                ("x-tenant-id", "globex"),
                ("x-source-app", "flow-web"),
            ],
            400,
            "more than once",
        ),
        (
            "key twice",
            vec![
                ("x-tenant-key", ACME_KEY),
                ("x-tenant-key", GLOBEX_KEY),
                ("x-tenant-id", "acme"),
                ("x-source-app", "flow-web"),
            ],
            400,
            "more than once",
        ),
    ];
    for (name, headers, status, message) in cases {
        let reply = app.with_headers(&headers).get(FlowApi, "/leads").await;
        assert_eq!(reply.status.as_u16(), status, "{name}: {}", reply.json);
        error_code(&reply);
        let text = reply.json["error"]["message"].as_str().unwrap();
        assert!(text.contains(message), "{name}: {text:?} lacks {message:?}");
        assert!(
            !text.contains("Secret"),
            "{name}: the key leaked into the error: {text}"
        );
    }
    // The umbrella key does work for its one app.
    assert_status(
        &app.as_app(UMBRELLA_KEY, "umbrella", "flow-web")
            .get(FlowApi, "/leads")
            .await,
        200,
    );
}

fn token(
    keys: &TokenKeys,
    source: ServiceName,
    target: ServiceName,
    tenant: &str,
    scope: &[&str],
    now: i64,
) -> String {
    keys.issue(source, target, tenant, Some("flow-web"), scope, now)
        .unwrap()
}

#[tokio::test]
async fn cross_app_tokens_work_only_for_their_tenant_audience_scope_and_lifetime() {
    let app = TestApp::spawn().await;
    let keys = TokenKeys::new(TOKEN_SECRET);
    let now = chrono::Utc::now().timestamp();
    let call = |token: String, tenant: &'static str, source_app: Option<&'static str>| {
        let app = &app;
        async move {
            let bearer = format!("Bearer {token}");
            let mut headers = vec![("authorization", bearer.as_str()), ("x-tenant-id", tenant)];
            if let Some(s) = source_app {
                headers.push(("x-source-app", s));
            }
            app.with_headers(&headers).get(CrmApi, "/contacts").await
        }
    };
    let good = token(&keys, FlowApi, CrmApi, "acme", &["read:contacts"], now);
    assert_status(&call(good.clone(), "acme", Some("flow-api")).await, 200);

    let reused = call(good.clone(), "globex", None).await;
    assert_status(&reused, 403);
    assert!(reused.json["error"]["message"]
        .as_str()
        .unwrap()
        .contains("another tenant"));
    assert_status(&call(good, "acme", Some("crm-web")).await, 403);

    let wrong_audience = token(
        &keys,
        FlowApi,
        SecurePlatform,
        "acme",
        &["read:contacts"],
        now,
    );
    assert_status(&call(wrong_audience, "acme", None).await, 401);
    let expired = token(
        &keys,
        FlowApi,
        CrmApi,
        "acme",
        &["read:contacts"],
        now - 600,
    );
    assert_status(&call(expired, "acme", None).await, 401);
    let forged = token(
        &TokenKeys::new(b"guessed"),
        FlowApi,
        CrmApi,
        "acme",
        &["read:contacts"],
        now,
    );
    assert_status(&call(forged, "acme", None).await, 401);
    // A scope the matrix does not give the issuer is worthless.
    let widened = token(&keys, FlowApi, CrmApi, "acme", &["read:deals"], now);
    let reply = app
        .with_headers(&[
            ("authorization", &format!("Bearer {widened}")),
            ("x-tenant-id", "acme"),
        ])
        .get(CrmApi, "/deals")
        .await;
    assert_status(&reply, 403);
    // And a token for a suspended tenant is refused.
    let suspended = token(&keys, FlowApi, CrmApi, "initech", &["read:contacts"], now);
    assert_status(&call(suspended, "initech", None).await, 403);
}

#[tokio::test]
async fn a_tenant_over_its_rate_limit_gets_429_and_others_do_not() {
    let app = TestApp::spawn().await;
    let created = app
        .with_headers(&[("authorization", "Bearer admin-token")])
        .post(
            FlowApi,
            "/admin/tenants",
            json!({ "id": "slowpoke", "rateLimitPerMinute": 3 }),
        )
        .await;
    assert_status(&created, 201);
    let key = created.json["apiKeys"][0].as_str().unwrap().to_owned();
    let slow = app.as_app(&key, "slowpoke", "flow-web");
    for _ in 0..3 {
        assert_status(&slow.get(FlowApi, "/leads").await, 200);
    }
    let limited = slow.get(FlowApi, "/leads").await;
    assert_status(&limited, 429);
    assert_eq!(error_code(&limited), "rate_limited");
    let retry_after: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=20).contains(&retry_after), "{retry_after}");
    assert_status(
        &app.as_app(ACME_KEY, "acme", "flow-web")
            .get(FlowApi, "/leads")
            .await,
        200,
    );
}
