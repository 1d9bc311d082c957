//! The `tokens` class: the platform's credentials between machines,
//! held to the contract's `tokens:` and `webhooks:` rules.
//!
//! Three parts, each with its own prerequisites (a part that cannot run
//! says why in the report's notes; the class is skipped only when none ran):
//!
//! - [`jwt`]: cross-app tokens minted by the harness (`jsonwebtoken`,
//!   never the services' code) for a fresh tenant. A valid one is sent
//!   first, so every refusal after it is about the one claim, header or
//!   signature that changed: a lifetime over the ceiling, an `iat` ahead,
//!   expiry, each required claim missing, other algorithms, another
//!   audience, an issuer that is not a service identity, another secret,
//!   another tenant, a permission the issuer does not hold.
//! - [`scan`]: no token in the repository's files outlives the ceiling
//!   (a committed credential that still works is a leaked one).
//! - [`webhooks`]: each webhook of the contract refuses a missing or
//!   forged signature and a timestamp outside its tolerance, and handles
//!   a replayed event once.
//!
//! Every finding names the rule, what was sent and the status got against
//! the status expected, with the request as a [`Repro`].

mod jwt;
mod scan;
mod webhooks;

pub use scan::{long_lived_tokens, LongLivedToken};

use super::{ClassReport, Repro, Target};

pub(super) async fn sweep(target: &Target, report: &mut ClassReport) {
    let mut not_run = Vec::new();
    match &target.repository {
        Some(root) => {
            if let Err(why) = scan::sweep(root, target, report) {
                not_run.push(format!("repository scan: {why}"));
            }
        }
        None => not_run.push("repository scan: no repository to scan".to_owned()),
    }
    if let Err(why) = jwt::sweep(target, report).await {
        not_run.push(format!("cross-app tokens: {why}"));
    }
    if let Err(why) = webhooks::sweep(target, report).await {
        not_run.push(format!("webhooks: {why}"));
    }
    if report.cases == 0 {
        report.skipped = Some(not_run.join("; "));
    } else {
        report
            .notes
            .extend(not_run.into_iter().map(|why| format!("not run: {why}")));
    }
}

/// What came back for one request.
#[derive(Debug)]
struct Sent {
    status: u16,
    body: String,
}

impl Sent {
    /// The answer's body, cut short for a finding.
    fn shown(&self) -> String {
        let body: String = self.body.chars().take(300).collect();
        if body.len() < self.body.len() {
            format!("{body}…")
        } else {
            body
        }
    }
}

/// Sends `repro` exactly as it reads.
async fn send(target: &Target, repro: &Repro) -> Result<Sent, String> {
    let method = reqwest::Method::from_bytes(repro.method.as_bytes())
        .map_err(|e| format!("method `{}`: {e}", repro.method))?;
    let url = format!("{}{}", repro.base_url, repro.path);
    let mut request = target.platform.http().request(method, &url);
    for (name, value) in &repro.headers {
        request = request.header(name, value);
    }
    if let Some(body) = &repro.body {
        request = request.body(body.clone());
    }
    let response = request.send().await.map_err(|e| {
        format!(
            "{} {url} got no answer: {}",
            repro.method,
            crate::env::error_chain(&e)
        )
    })?;
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    Ok(Sent { status, body })
}
