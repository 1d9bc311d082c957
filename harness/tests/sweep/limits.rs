//! The `limits` class catches its deliberate defects.

use tekup_harness::sweep::Class;

use crate::{matching, sweep_on};

/// All four on in one ecosystem (each ecosystem costs a minute or two):
/// each defect's finding names what it breaks.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_limits_class_reports_each_of_its_defects() {
    let report = sweep_on(
        "metrics-any-method,no-conn-timeouts,ws-no-frame-limit,log-unbounded",
        &[Class::Limits],
    )
    .await;
    let class = &report.classes[0];
    assert!(class.skipped.is_none(), "{:?}", class.skipped);
    let all: Vec<String> = report.findings().map(ToString::to_string).collect();
    let all = all.join("\n\n");

    // metrics-any-method: every service labels by the raw method.
    let series = matching(&report, "metric series with labels the client chose");
    for service in [
        "flow-api",
        "crm-api",
        "secure-platform",
        "gateway",
        "worker",
    ] {
        let finding = series
            .iter()
            .find(|f| f.operation == format!("{service} GET /metrics"))
            .unwrap_or_else(|| panic!("no metric finding for {service}:\n{all}"));
        let repro = finding.repro.as_ref().expect("a repro");
        assert!(repro.method.starts_with('X'), "{}", repro.curl());
    }

    // no-conn-timeouts: slow-header and idle connections stay open.
    for needle in ["(header-read-timeout 10s)", "(idle-timeout 30s)"] {
        assert_eq!(matching(&report, needle).len(), 5, "{needle}:\n{all}");
    }

    // ws-no-frame-limit: the oversized message and the 1 MiB room are read.
    let frames = matching(&report, "was not refused with 1009");
    assert_eq!(frames.len(), 2, "{all}");
    assert!(
        frames
            .iter()
            .all(|f| f.detail.contains("read it and answered")),
        "{all}"
    );

    // log-unbounded: the gateway logs the room name whole.
    let logs = matching(&report, "over max-log-line");
    assert!(
        logs.iter().any(|f| f.operation == "gateway log"
            && f.detail.contains("tenant=\"tekup-harness-")
            && f.detail.contains("-sweep-limits-")),
        "{all}"
    );
}
