//! The `access` class catches its deliberate defects: a permission check
//! that always passes, a suspended tenant let in, a credential header that
//! counts by its first value when given twice, a gateway that lets a
//! connection join any room, and a write stored before its permission is
//! checked (refused with the right status, but not without effect).

use tekup_harness::sweep::Class;

use crate::{matching, sweep_on};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_access_class_catches_each_deliberate_access_defect() {
    let report = sweep_on(
        "access-skip-permission,access-suspended,access-dup-header,gateway-any-room",
        &[Class::Access],
    )
    .await;
    for (needle, what) in [
        (
            "which lacks the permission: answered 2",
            "the skipped permission check",
        ),
        (
            "as a suspended tenant: answered 2",
            "the suspended tenant let in",
        ),
        (
            "twice: answered 2",
            "the duplicated header counted by its first value",
        ),
        ("a room not its own", "the foreign room joined"),
    ] {
        assert!(
            !matching(&report, needle).is_empty(),
            "{what} went unnoticed (no finding with {needle:?})"
        );
    }
    // Every request finding comes with its smallest request as curl and step.
    let skip = matching(&report, "which lacks the permission");
    let repro = skip[0].repro.as_ref().expect("a request shows it");
    assert!(repro.curl().starts_with("curl -sS -X "), "{}", repro.curl());
    assert!(
        !repro.curl().contains("tk_"),
        "a key leaked: {}",
        repro.curl()
    );
    assert!(
        repro.scenario_step().starts_with("- http: { service: "),
        "{}",
        repro.scenario_step()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_refused_after_it_was_stored_is_caught_by_its_table() {
    let report = sweep_on("access-late-check", &[Class::Access]).await;
    // Every status is right: only the stores tell.
    let statuses: Vec<String> = report
        .findings()
        .filter(|f| f.operation.starts_with("flow-api"))
        .map(ToString::to_string)
        .collect();
    assert!(statuses.is_empty(), "{}", statuses.join("\n"));
    let stored = matching(&report, "refused requests stored");
    assert!(
        stored.iter().any(|f| f.operation == "database flow.leads"),
        "the lead stored before its refusal went unnoticed: {stored:?}"
    );
}
