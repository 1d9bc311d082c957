//! Metric series: unauthenticated junk must add no series whose labels a
//! client chose.

use std::collections::BTreeSet;

use futures::StreamExt;
use reqwest::Method;

use super::super::{Class, ClassReport, Repro, Size, Target};
use crate::contract::Limits;

/// The junk requests sent to each service at the bounded size (four
/// shapes in turn, so each shape is sent this many times over four).
const BOUNDED: usize = 52;
const FULL: usize = 200;

/// One junk request: what it sent, and the values a label could take from it.
struct Junk {
    repro: Repro,
    tokens: Vec<String>,
}

pub(super) async fn check(
    target: &Target,
    limits: &Limits,
    services: &[(String, String)],
    marker: &str,
) -> ClassReport {
    let count = match target.size {
        Size::Bounded => BOUNDED,
        Size::Full => FULL,
    };
    let parts = futures::future::join_all(
        services
            .iter()
            .map(|(service, url)| service_check(target, limits, service, url, marker, count)),
    )
    .await;
    let mut report = ClassReport::new(Class::Limits);
    for part in parts {
        super::merge(&mut report, part);
    }
    report
}

async fn service_check(
    target: &Target,
    limits: &Limits,
    service: &str,
    url: &str,
    marker: &str,
    count: usize,
) -> ClassReport {
    let mut report = ClassReport::new(Class::Limits);
    let operation = format!("{service} GET /metrics");
    report.operations.insert(operation.clone());
    let before = match read_series(target, service).await {
        Ok(series) => series,
        Err(why) => {
            report
                .notes
                .push(format!("{service}: metric series not checked: {why}"));
            return report;
        }
    };
    let junk: Vec<Junk> = (0..count)
        .map(|i| junk(service, url, &format!("{marker}{i:04}"), i))
        .collect();
    let http = target.platform.http();
    futures::stream::iter(junk.iter())
        .for_each_concurrent(8, |j| async move {
            // What the service answers does not matter here, only what it counts.
            let _ = send(http, &j.repro).await;
        })
        .await;
    report.cases += junk.len();
    let after = match read_series(target, service).await {
        Ok(series) => series,
        Err(why) => {
            report.found(
                operation,
                "/metrics could not be read after unauthenticated junk",
                why,
                None,
            );
            return report;
        }
    };
    let new: Vec<&String> = after.difference(&before).collect();
    let chosen: Vec<(&String, &Junk)> = new
        .iter()
        .filter_map(|series| {
            let lower = series.to_ascii_lowercase();
            junk.iter()
                .find(|j| j.tokens.iter().any(|t| lower.contains(t.as_str())))
                .map(|j| (*series, j))
        })
        .collect();
    let allowed = limits.max_metric_series_growth;
    if chosen.len() as u64 > allowed {
        let shown: Vec<String> = chosen
            .iter()
            .take(5)
            .map(|(series, _)| format!("  {}", super::head(series, 200)))
            .collect();
        report.found(
            operation,
            format!(
                "{} unauthenticated junk requests added {} metric series with labels the client chose (max-metric-series-growth {allowed})",
                junk.len(),
                chosen.len()
            ),
            format!(
                "{} series before, {} after ({} new in all); for example:\n{}\nlabels must come from a bounded set (standard methods, matched routes), else a client grows the series without end",
                before.len(),
                after.len(),
                new.len(),
                shown.join("\n")
            ),
            Some(chosen[0].1.repro.clone()),
        );
    }
    report
}

/// Junk request `i` of four shapes in turn: an invented method on a random
/// path, an invented method on `/health`, a random path and query with odd
/// headers, an invented method with a body of junk.
fn junk(service: &str, url: &str, tag: &str, i: usize) -> Junk {
    let method = format!("X{tag}");
    let id = uuid::Uuid::new_v4().to_string();
    let random = format!("/x/{id}");
    let (repro, tokens) = match i % 4 {
        0 => (
            Repro::new(service, url, &method, &random),
            vec![method.clone(), id],
        ),
        1 => (
            Repro::new(service, url, &method, "/health"),
            vec![method.clone()],
        ),
        2 => {
            let name = format!("x-{}", tag.to_ascii_lowercase());
            let repro = Repro::new(service, url, "GET", &format!("{random}?{tag}={tag}"))
                .header(&name, &id)
                .header("x-tenant-id", &format!("t-{tag}"))
                .header("x-tenant-key", &format!("tk_{tag}_junk"))
                .header("x-source-app", &format!("app-{tag}"))
                .header("user-agent", &format!("junk/{tag}"));
            (repro, vec![tag.to_owned(), id])
        }
        _ => (
            Repro::new(service, url, &method, &random)
                .header("content-type", &format!("application/x-{tag}"))
                .raw(format!("{tag}{tag}")),
            vec![method.clone(), id],
        ),
    };
    Junk {
        repro,
        tokens: tokens.iter().map(|t| t.to_ascii_lowercase()).collect(),
    }
}

async fn send(http: &reqwest::Client, repro: &Repro) -> Result<(), String> {
    let method = Method::from_bytes(repro.method.as_bytes()).map_err(|e| e.to_string())?;
    let mut request = http.request(method, format!("{}{}", repro.base_url, repro.path));
    for (name, value) in &repro.headers {
        request = request.header(name, value);
    }
    if let Some(body) = &repro.body {
        request = request.body(body.clone());
    }
    let response = request.send().await.map_err(|e| e.to_string())?;
    let _ = response.bytes().await;
    Ok(())
}

/// The series `/metrics` of `service` exposes.
async fn read_series(target: &Target, service: &str) -> Result<BTreeSet<String>, String> {
    let answer = target
        .platform
        .get_public(service, "/metrics")
        .await
        .map_err(|e| e.to_string())?;
    match (answer.status, answer.body.as_str()) {
        (200, Some(text)) => Ok(series(text)),
        (status, _) => Err(format!("GET /metrics answered {status}")),
    }
}

/// The series of a Prometheus or OpenMetrics text: each sample line's name
/// and labels, without its value and timestamp.
pub(super) fn series(text: &str) -> BTreeSet<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| series_key(l).to_owned())
        .collect()
}

/// `name{labels}` of a sample line (label values may hold spaces, braces
/// and escaped quotes).
fn series_key(line: &str) -> &str {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .unwrap_or(line.len());
    if !line[name_end..].starts_with('{') {
        return &line[..name_end];
    }
    let mut quoted = false;
    let mut escaped = false;
    for (at, c) in line[name_end..].char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '}' if !quoted => return &line[..name_end + at + 1],
            _ => {}
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_are_names_and_labels_without_values() {
        let text = "# HELP http_requests HTTP requests served.\n\
                    # TYPE http_requests counter\n\
                    http_requests_total{method=\"GET\",route=\"/a b}\",status=\"200\"} 3\n\
                    http_requests_total{method=\"X\\\"Y\",route=\"unmatched\",status=\"404\"} 1 1700000000\n\
                    leads_created_total 7\n\
                    # EOF\n";
        let got: Vec<String> = series(text).into_iter().collect();
        assert_eq!(
            got,
            [
                "http_requests_total{method=\"GET\",route=\"/a b}\",status=\"200\"}",
                "http_requests_total{method=\"X\\\"Y\",route=\"unmatched\",status=\"404\"}",
                "leads_created_total",
            ]
        );
    }

    #[test]
    fn junk_carries_its_tag_in_what_a_label_could_take() {
        for i in 0..4 {
            let j = junk("flow-api", "http://h", "AB12", i);
            assert!(j.tokens.iter().all(|t| t.contains("ab12") || t.len() == 36));
            assert!(Method::from_bytes(j.repro.method.as_bytes()).is_ok());
            assert!(
                j.repro.headers.iter().all(|(n, _)| n != "x-tenant-key") || j.repro.method == "GET"
            );
        }
    }
}
