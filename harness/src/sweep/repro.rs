//! The smallest request that shows a finding, as a `curl` line (secrets
//! redacted) and as a scenario step a team can paste into a file.

use serde_json::Value;

/// Headers whose values are secrets: shown as `***` in every repro.
const SECRET_HEADERS: [&str; 4] = [
    "x-tenant-key",
    "authorization",
    "stripe-signature",
    "cookie",
];

/// One HTTP request, as sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Repro {
    /// The service it went to (`flow-api`).
    pub service: String,
    /// Its base URL when sent (`http://127.0.0.1:41234`).
    pub base_url: String,
    pub method: String,
    /// Path and query, as sent (`/leads?limit=0`).
    pub path: String,
    /// In the order sent; a name may repeat.
    pub headers: Vec<(String, String)>,
    /// The raw body, if any (not always valid JSON: that may be the point).
    pub body: Option<String>,
    /// The app and scenario tenant name to put in the step, when the
    /// request was a tenant's (`tenant: a`, `app: flow-web`).
    pub tenant: Option<(String, String)>,
}

impl Repro {
    /// A request without headers or body.
    pub fn new(service: &str, base_url: &str, method: &str, path: &str) -> Self {
        Self {
            service: service.to_owned(),
            base_url: base_url.trim_end_matches('/').to_owned(),
            method: method.to_owned(),
            path: path.to_owned(),
            headers: Vec::new(),
            body: None,
            tenant: None,
        }
    }

    /// Adds a header.
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers
            .push((name.to_ascii_lowercase(), value.to_owned()));
        self
    }

    /// Sets a JSON body (and its content type).
    #[must_use]
    pub fn json(mut self, body: &Value) -> Self {
        self.body = Some(body.to_string());
        if !self.headers.iter().any(|(n, _)| n == "content-type") {
            self = self.header("content-type", "application/json");
        }
        self
    }

    /// Sets a raw body.
    #[must_use]
    pub fn raw(mut self, body: impl Into<String>) -> Self {
        self.body = Some(body.into());
        self
    }

    fn shown(name: &str, value: &str) -> String {
        if SECRET_HEADERS.contains(&name) {
            "***".to_owned()
        } else {
            value.to_owned()
        }
    }

    /// `curl -sS -X POST 'http://…/leads' -H 'x-tenant-key: ***' --data-raw '…'`.
    pub fn curl(&self) -> String {
        let mut line = format!(
            "curl -sS -X {} {}",
            self.method,
            shell_quote(&format!("{}{}", self.base_url, self.path))
        );
        for (name, value) in &self.headers {
            line.push_str(" -H ");
            line.push_str(&shell_quote(&format!(
                "{name}: {}",
                Self::shown(name, value)
            )));
        }
        if let Some(body) = &self.body {
            line.push_str(" --data-raw ");
            line.push_str(&shell_quote(&shorten(body, 2000)));
        }
        line
    }

    /// The same request as a scenario step (one line of YAML flow style).
    /// Credential headers are left to `tenant`/`app` when the request was
    /// a tenant's own; other headers are written out, secrets redacted.
    pub fn scenario_step(&self) -> String {
        let mut parts = vec![format!("service: {}", self.service)];
        if let Some((tenant, app)) = &self.tenant {
            parts.push(format!("tenant: {tenant}"));
            parts.push(format!("app: {app}"));
        }
        let mut request = vec![
            format!("method: {}", self.method),
            format!("path: {}", yaml_string(&self.path)),
        ];
        let own = [
            "x-tenant-key",
            "x-tenant-id",
            "x-source-app",
            "content-type",
        ];
        let headers: Vec<String> = self
            .headers
            .iter()
            .filter(|(n, _)| self.tenant.is_none() || !own.contains(&n.as_str()))
            .filter(|(n, _)| n != "content-type")
            .map(|(n, v)| format!("{n}: {}", yaml_string(&Self::shown(n, v))))
            .collect();
        if !headers.is_empty() {
            request.push(format!("headers: {{ {} }}", headers.join(", ")));
        }
        if let Some(body) = &self.body {
            match serde_json::from_str::<Value>(body) {
                Ok(json) => request.push(format!("json: {}", shorten(&json.to_string(), 2000))),
                Err(_) => request.push(format!("body: {}", yaml_string(&shorten(body, 2000)))),
            }
        }
        parts.push(format!("request: {{ {} }}", request.join(", ")));
        format!("- http: {{ {} }}", parts.join(", "))
    }
}

/// The text cut to `max` characters, saying how much was cut.
fn shorten(text: &str, max: usize) -> String {
    let count = text.chars().count();
    if count <= max {
        return text.to_owned();
    }
    let head: String = text.chars().take(max).collect();
    format!("{head}… ({} more characters)", count - max)
}

/// Single-quoted for a POSIX shell.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// A YAML double-quoted string (JSON escapes are valid YAML ones).
fn yaml_string(text: &str) -> String {
    Value::String(text.to_owned()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_are_redacted_in_curl_and_in_the_step() {
        let repro = Repro::new("flow-api", "http://127.0.0.1:1/", "POST", "/leads")
            .header("x-tenant-key", "tk_abcd_secretsecretsecretsecret")
            .header("x-tenant-id", "t-1")
            .header("authorization", "Bearer eyJ.x.y")
            .json(&json!({ "firstName": "it's\u{0}" }));
        let curl = repro.curl();
        assert!(
            !curl.contains("secretsecret") && !curl.contains("eyJ"),
            "{curl}"
        );
        assert!(
            curl.starts_with("curl -sS -X POST 'http://127.0.0.1:1/leads'"),
            "{curl}"
        );
        assert!(curl.contains(r"it'\''s\u0000"), "{curl}");
        let step = repro.scenario_step();
        assert!(
            !step.contains("secretsecret") && !step.contains("eyJ"),
            "{step}"
        );
        assert!(
            step.contains(r#"json: {"firstName":"it's\u0000"}"#),
            "{step}"
        );
        assert!(step.contains(r#"x-tenant-id: "t-1""#), "{step}");
    }

    #[test]
    fn a_tenants_own_request_uses_tenant_and_app() {
        let mut repro = Repro::new("crm-api", "http://h", "GET", "/contacts?limit=0")
            .header("x-tenant-key", "k")
            .header("x-tenant-id", "t")
            .header("x-source-app", "crm-web");
        repro.tenant = Some(("a".into(), "crm-web".into()));
        assert_eq!(
            repro.scenario_step(),
            r#"- http: { service: crm-api, tenant: a, app: crm-web, request: { method: GET, path: "/contacts?limit=0" } }"#
        );
    }
}
