//! The `inputs` class catches its deliberate defects: a NUL byte that
//! reaches Postgres (a 500), another tenant's ids taken inside request
//! bodies, a refusal that comes after the write was stored and an admin
//! body read before the token, each shown by a minimal request.

use tekup_harness::sweep::{Class, Finding};

use crate::{matching, sweep_on};

/// The repro's curl line, asserted to be there and to hide the key.
fn curl(finding: &Finding) -> String {
    let repro = finding
        .repro
        .as_ref()
        .unwrap_or_else(|| panic!("no repro for {finding}"));
    let curl = repro.curl();
    assert!(curl.starts_with("curl -sS -X "), "{curl}");
    assert!(
        curl.contains("x-tenant-key: ***"),
        "key not redacted: {curl}"
    );
    let step = repro.scenario_step();
    assert!(step.contains("tenant: a, app: "), "{step}");
    curl
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nul_bytes_that_fail_the_request_and_foreign_ids_taken_are_found() {
    let report = sweep_on("input-nul-500,input-foreign-ids", &[Class::Inputs]).await;
    let inputs = &report.classes[0];
    assert!(inputs.skipped.is_none(), "{:?}", inputs.skipped);

    let nul: Vec<&Finding> = matching(&report, "(a NUL byte)")
        .into_iter()
        .filter(|f| f.title.contains("answered 500"))
        .collect();
    assert!(
        !nul.is_empty(),
        "no 500 for a NUL byte:\n{}",
        report.summary()
    );
    let lead = nul
        .iter()
        .find(|f| f.operation == "flow-api POST /leads" && f.title.contains("`firstName:"))
        .unwrap_or_else(|| panic!("no NUL in firstName of POST /leads among {nul:#?}"));
    let line = curl(lead);
    assert!(line.contains(r"\u0000"), "{line}");
    // Shrunk: the optional fields of the example play no part in it.
    assert!(
        !line.contains("lastName") && !line.contains("company"),
        "{line}"
    );

    let foreign = matching(&report, "another tenant's id accepted");
    for (operation, field) in [
        ("crm-api POST /contacts/{id}/leads", "leadId"),
        ("flow-api POST /activities", "entityId"),
        ("flow-api POST /compliance/report", "incidentId"),
        ("crm-api POST /deals", "contactId"),
    ] {
        let found = foreign
            .iter()
            .find(|f| f.operation == operation && f.title.contains(&format!("`{field}:")))
            .unwrap_or_else(|| panic!("{operation} {field}: not found among {foreign:#?}"));
        curl(found);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refused_write_that_stored_a_row_and_an_admin_body_read_before_the_token_are_found() {
    let report = sweep_on(
        "input-late-refusal,input-admin-body-first",
        &[Class::Inputs],
    )
    .await;
    let stored = matching(&report, "was refused but stored");
    let found = stored
        .iter()
        .find(|f| {
            f.operation == "flow-api POST /compliance/report"
                && f.title.contains("`incidentId: another tenant's id`")
                && f.title.contains("1 row(s) in flow.compliance_reports")
        })
        .unwrap_or_else(|| panic!("no stored refusal among {stored:#?}\n{}", report.summary()));
    curl(found);

    // Every service's /admin/tenants, without a token and with a wrong one.
    let admin = matching(&report, "(missing-credentials)");
    let malformed: Vec<&&Finding> = admin
        .iter()
        .filter(|f| {
            f.title
                .contains("`a malformed body with no admin token` answered 400")
        })
        .collect();
    assert_eq!(malformed.len(), 4, "{admin:#?}");
    let line = malformed[0].repro.as_ref().expect("a repro").curl();
    assert!(
        line.contains("/admin/tenants") && !line.contains("authorization"),
        "{line}"
    );
    assert_eq!(
        report.findings().count(),
        stored.len() + admin.len(),
        "nothing else is wrong:\n{}",
        report.summary()
    );
}
