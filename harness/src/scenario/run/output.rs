//! A failed scenario as text a user can act on in a terminal or in
//! `cargo test` output, and the redaction every shown text goes through.

use std::fmt::Write as _;

use crate::report::{ScenarioReport, Status};

/// Removes terminal colour codes (`ESC [ ... m`) from log lines.
pub(crate) fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Replaces the run's secrets (tenant API keys) and anything shaped like a
/// TekUp API key (`tk_<id>_<secret>`) or a bearer token with `[redacted]`.
pub(crate) fn redact(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_owned();
    for s in secrets.iter().filter(|s| s.len() >= 8) {
        out = out.replace(s.as_str(), "[redacted]");
    }
    redact_api_keys(&redact_bearer(&out))
}

fn redact_bearer(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("Bearer ") {
        let (before, after) = rest.split_at(at + "Bearer ".len());
        out.push_str(before);
        let end = after
            .find(|c: char| c.is_whitespace() || c == '"' || c == '\'')
            .unwrap_or(after.len());
        if end > 0 {
            out.push_str("[redacted]");
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

fn redact_api_keys(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("tk_") {
        out.push_str(&rest[..at]);
        let candidate = &rest[at..];
        let end = candidate
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
            .unwrap_or(candidate.len());
        let token = &candidate[..end];
        // tk_<id>_<secret>: keep the id, hide the secret.
        match token[3..].find('_') {
            Some(i) if token.len() > 3 + i + 1 => {
                out.push_str(&token[..3 + i + 1]);
                out.push_str("[redacted]");
            }
            _ => out.push_str(token),
        }
        rest = &candidate[end..];
    }
    out.push_str(rest);
    out
}

/// The failure of a scenario, or `None` when it passed.
pub fn failure_text(report: &ScenarioReport) -> Option<String> {
    if report.status != Status::Failed {
        return None;
    }
    let failure = report.failure.as_ref()?;
    let mut out = String::new();
    let _ = writeln!(out, "scenario `{}` failed ({})", report.name, report.file);
    let _ = writeln!(out, "  at {}: {}", failure.location, failure.message);
    if let Some(step) = failure.step.and_then(|i| report.steps.get(i - 1)) {
        let _ = writeln!(out, "  step {}: {}", step.index, step.label);
    }
    if !report.tenants.is_empty() {
        let tenants: Vec<String> = report
            .tenants
            .iter()
            .map(|(k, v)| format!("{k} = {v}"))
            .collect();
        let _ = writeln!(out, "  tenants: {}", tenants.join(", "));
    }
    let section = |out: &mut String, title: &str, body: &str| {
        let _ = writeln!(out, "\n  --- {title}");
        for line in body.trim_end().lines() {
            let _ = writeln!(out, "  {line}");
        }
    };
    if let Some(diff) = &failure.diff {
        section(&mut out, "diff (- expected, + got)", diff);
    }
    if let Some(request) = &failure.request {
        section(&mut out, "request", request);
    }
    if let Some(response) = &failure.response {
        section(&mut out, "response", response);
    }
    for (conn, events) in &failure.ws_events {
        section(
            &mut out,
            &format!("WebSocket `{conn}` received"),
            &events.join("\n"),
        );
    }
    if !report.steps.is_empty() {
        let steps: Vec<String> = report
            .steps
            .iter()
            .map(|s| {
                format!(
                    "{:>2}. {:<6} {:>8.1} ms  {}  ({})",
                    s.index,
                    format!("{:?}", s.status).to_lowercase(),
                    s.duration_ms,
                    s.label,
                    s.location
                )
            })
            .collect();
        section(&mut out, "steps", &steps.join("\n"));
    }
    for (component, tail) in &failure.logs {
        section(&mut out, &format!("last log lines of {component}"), tail);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_tokens_are_redacted() {
        let text = "x-tenant-key: tk_ab12_SECRETsecret99\nAuthorization: Bearer abc.def.ghi\nkey=mysecretvalue";
        let out = redact(text, &["mysecretvalue".to_owned()]);
        assert!(!out.contains("SECRETsecret99"), "{out}");
        assert!(out.contains("tk_ab12_[redacted]"), "{out}");
        assert!(
            !out.contains("abc.def.ghi") && out.contains("Bearer [redacted]"),
            "{out}"
        );
        assert!(!out.contains("mysecretvalue"), "{out}");
        assert_eq!(redact("tk_ and tk_x", &[]), "tk_ and tk_x");
    }

    #[test]
    fn colour_codes_are_stripped() {
        assert_eq!(
            strip_ansi("\u{1b}[2m2026\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m x"),
            "2026  INFO x"
        );
    }
}
