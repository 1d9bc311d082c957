//! The `limits` class: what a client may cost the platform, held to the
//! bounds of the contract's `limits` (`fixtures/platform.yaml`).
//!
//! Four checks, on every service of the contract that has a URL:
//!
//! - **metric series** ([`metrics`]): `/metrics` read, unauthenticated junk
//!   sent (invented method names, random paths, odd headers), `/metrics`
//!   read again. A new series whose labels carry a value the junk chose is
//!   one a client can add at will; more than `max-metric-series-growth` is a
//!   finding. Series are matched to the junk rather than counted, because
//!   other work of the platform (a worker settling the jobs an earlier class
//!   queued) adds series of its own meanwhile.
//! - **connections** ([`connections`]): a request header sent one byte at a
//!   time and never finished, and a connection that sends nothing, must be
//!   closed by the server within `header-read-timeout` and `idle-timeout`
//!   plus a margin. The sweep waits on the socket's end with that deadline,
//!   so a service that closes in time costs only its own timeout.
//! - **WebSocket messages** ([`websocket`]): over `max-ws-frame` bytes, a
//!   message is refused with close code 1009 (RFC 6455, message too big),
//!   a 1 MiB room name included; a WebSocket ping sent after it tells a
//!   gateway that read the message from one that refused it.
//! - **log lines** ([`logs`]): last, after the junk, each service's log file
//!   holds no line over `max-log-line` bytes (the finding names the
//!   component and shows the line's first 200 characters).
//!
//! The metric check runs first, alone, so that nothing else of this class
//! adds series while it counts; the connection and WebSocket checks then
//! run side by side, each waiting on its own sockets.

mod connections;
mod logs;
mod metrics;
mod websocket;

use std::time::Duration;

use super::{ClassReport, Target};

/// Added to a stated bound before the sweep gives up waiting for the
/// server: scheduling and a busy machine, not the platform's slack.
const MARGIN: Duration = Duration::from_secs(5);

/// The contract's services that have a URL: (name, base URL).
fn services(target: &Target) -> Vec<(String, String)> {
    target
        .contract
        .services
        .iter()
        .filter_map(|s| Some((s.clone(), target.platform.url(s).ok()?.to_owned())))
        .collect()
}

/// A random marker of this run, in the values the junk sends (uppercase
/// letters and digits: valid in a method name, a path and a header).
fn marker() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..10].to_ascii_uppercase()
}

pub(super) async fn sweep(target: &Target, report: &mut ClassReport) {
    let Some(limits) = target.contract.limits.clone() else {
        report.skipped = Some(format!(
            "the contract ({}) states no `limits`",
            target.contract.source
        ));
        return;
    };
    let services = services(target);
    if services.is_empty() {
        report.skipped = Some("no service of the contract has a URL".into());
        return;
    }
    merge(
        report,
        metrics::check(target, &limits, &services, &marker()).await,
    );
    let ws_marker = marker();
    let (conns, sockets) = tokio::join!(
        connections::check(&limits, &services),
        websocket::check(target, &limits, &ws_marker),
    );
    let provoked = sockets.1;
    merge(report, conns);
    merge(report, sockets.0);
    merge(
        report,
        logs::check(target, &limits, provoked.as_deref()).await,
    );
}

/// Adds what a part of the class did to the class's report.
fn merge(report: &mut ClassReport, part: ClassReport) {
    report.cases += part.cases;
    report.operations.extend(part.operations);
    report.findings.extend(part.findings);
    report.notes.extend(part.notes);
}

/// The first `max` characters of `text`, saying how much was cut.
fn head(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some((end, _)) => format!("{}… ({} bytes in all)", &text[..end], text.len()),
    }
}

/// A duration as a person reads it (`10s`, `1.5s`).
fn secs(d: Duration) -> String {
    format!("{}s", (d.as_secs_f64() * 10.0).round() / 10.0)
}
