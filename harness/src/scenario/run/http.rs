//! `http` and `ws` steps: requests to services as a tenant's app, and the
//! run's WebSocket connections.

use std::fmt::Write as _;
use std::time::Instant;

use serde_json::Value;

use super::ws::{Conn, Observer};
use super::{body, check};
use super::{Run, StepError};
use crate::report::{Message, MessageKind};
use crate::scenario::model::{HttpExpect, HttpStep, WsStep};

/// Headers whose values never appear in output.
const SECRET_HEADERS: [&str; 5] = [
    "x-tenant-key",
    "authorization",
    "stripe-signature",
    "cookie",
    "set-cookie",
];
/// Response bodies longer than this are cut in failure output.
const BODY_LIMIT: usize = 4096;

/// The component that serves `/events`.
const GATEWAY: &str = "gateway";

impl Run<'_> {
    pub(super) async fn http(&mut self, step: &HttpStep) -> Result<(), StepError> {
        let base = self
            .runner
            .components
            .get(&step.service)
            .ok_or_else(|| {
                StepError::from(format!(
                    "no component `{}` with a URL in the ecosystem (it has {})",
                    step.service,
                    self.runner
                        .components
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?
            .clone();
        self.involved.insert(step.service.clone());
        let path = self.values.text(&step.request.path)?;
        let url = body::url(
            &self.values,
            &format!("{}{}", base.trim_end_matches('/'), path),
            &step.request.query,
        )?;
        let method = reqwest::Method::from_bytes(step.request.method.as_bytes())
            .map_err(|_| format!("`{}` is not an HTTP method", step.request.method))?;
        let mut headers: Vec<(String, String)> = Vec::new();
        if let Some(name) = &step.tenant {
            let tenant = self
                .values
                .tenants
                .get(name)
                .cloned()
                .ok_or_else(|| format!("tenant `{name}` was not created for this run"))?;
            headers.push(("x-tenant-key".into(), tenant.key));
            headers.push(("x-tenant-id".into(), tenant.id));
        }
        if let Some(app) = &step.app {
            headers.push(("x-source-app".into(), self.values.text(app)?));
        }
        let correlation = self.correlation_id();
        headers.push(("x-correlation-id".into(), correlation.clone()));
        if let Some(cookie) = body::cookie(&self.values, &step.request.cookies)? {
            headers.push(("cookie".into(), cookie));
        }
        let encoded = match &step.request.body {
            Some(b) => Some(body::encode(&self.values, b).await?),
            None => None,
        };
        if let Some(encoded) = &encoded {
            headers.push(("content-type".into(), encoded.content_type.clone()));
        }
        for (name, value) in &step.request.headers {
            let value = self.values.text(value)?;
            let name = name.to_ascii_lowercase();
            headers.retain(|(n, _)| *n != name);
            headers.push((name, value));
        }
        let body = step
            .request
            .json
            .as_ref()
            .map(|j| self.values.json(j))
            .transpose()?;
        let shown = match (&body, &encoded) {
            (Some(json), _) => Some(serde_json::to_string_pretty(json).unwrap_or_default()),
            (None, Some(e)) => Some(String::from_utf8_lossy(&e.bytes).into_owned()),
            (None, None) => None,
        };
        let request_text = request_text(&method, &url, &headers, shown.as_deref());
        let mut request = self.runner.http.request(method.clone(), &url);
        for (name, value) in &headers {
            request = request.header(name.as_str(), value.as_str());
        }
        if let Some(body) = &body {
            request = request.json(body);
        } else if let Some(encoded) = encoded {
            request = request.body(encoded.bytes);
        }
        let target = step.service.clone();
        self.observe(Message {
            at_ms: self.clock.now_ms(),
            from: "harness".into(),
            to: target.clone(),
            kind: MessageKind::Request,
            label: format!("{method} {}", path_only(&path)),
            correlation_id: Some(correlation.clone()),
        });
        let sent = Instant::now();
        let response = request.send().await;
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                self.service += sent.elapsed();
                return Err(StepError {
                    message: format!(
                        "{method} {url} got no response: {}",
                        crate::env::error_chain(&e)
                    ),
                    request: Some(request_text),
                    ..StepError::default()
                });
            }
        };
        let status = response.status();
        let response_headers: Vec<(String, String)> = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let bytes = response.bytes().await;
        self.service += sent.elapsed();
        let bytes = bytes.map_err(|e| StepError {
            message: format!("{method} {url}: reading the response failed: {e}"),
            request: Some(request_text.clone()),
            ..StepError::default()
        })?;
        self.observe(Message {
            at_ms: self.clock.now_ms(),
            from: target,
            to: "harness".into(),
            kind: MessageKind::Response,
            label: status.as_u16().to_string(),
            correlation_id: Some(correlation),
        });
        self.note = Some(status.as_u16().to_string());
        let json: Option<Value> = serde_json::from_slice(&bytes).ok();
        let exchange = |message: String, diff: Option<String>| StepError {
            message,
            diff,
            request: Some(request_text.clone()),
            response: Some(response_text(status.as_u16(), &response_headers, &bytes)),
        };
        if let Some(expect) = &step.expect {
            self.check_response(expect, status.as_u16(), &response_headers, json.as_ref())
                .map_err(|(m, d)| exchange(m, d))?;
            let text = String::from_utf8_lossy(&bytes);
            for want in &expect.body_contains {
                let want = self.values.text(want)?;
                if !text.contains(want.as_str()) {
                    return Err(exchange(
                        format!("the body does not contain `{want}`"),
                        None,
                    ));
                }
            }
        } else if status.is_server_error() {
            return Err(exchange(
                format!("{status} (a step without `expect` still fails on a 5xx)"),
                None,
            ));
        }
        for (name, path) in &step.save {
            let root = json.as_ref().ok_or_else(|| {
                exchange(format!("`save: {name}`: the response is not JSON"), None)
            })?;
            let value = check::json_path(root, path)
                .map_err(|e| exchange(format!("`save: {name}`: {e}"), None))?
                .ok_or_else(|| {
                    exchange(
                        format!("`save: {name}`: `{path}` is not in the response"),
                        None,
                    )
                })?;
            self.values.saved.insert(name.clone(), value.clone());
        }
        Ok(())
    }

    fn check_response(
        &self,
        expect: &HttpExpect,
        status: u16,
        headers: &[(String, String)],
        json: Option<&Value>,
    ) -> Result<(), (String, Option<String>)> {
        if let Some(want) = expect.status {
            if want != status {
                return Err((format!("expected status {want}, got {status}"), None));
            }
        }
        for (name, want) in &expect.headers {
            let want = self.values.json(want).map_err(|e| (e, None))?;
            let got = headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str());
            if let Some(why) = check::header(name, &want, got) {
                return Err((why, None));
            }
        }
        if let Some(want) = &expect.json {
            let want = self.values.json(want).map_err(|e| (e, None))?;
            let got =
                json.ok_or_else(|| ("expected a JSON body, got something else".to_owned(), None))?;
            if let Some(why) = check::subset(&want, got) {
                return Err((
                    format!("the body does not contain the expected JSON: {why}"),
                    Some(check::diff(&want, got)),
                ));
            }
        }
        if let Some(schema) = &expect.json_schema {
            let got =
                json.ok_or_else(|| ("expected a JSON body, got something else".to_owned(), None))?;
            let validator = jsonschema::validator_for(schema)
                .map_err(|e| (format!("`json-schema` is not a valid schema: {e}"), None))?;
            let errors: Vec<String> = validator
                .iter_errors(got)
                .take(5)
                .map(|e| format!("{} at {}", e, e.instance_path))
                .collect();
            if !errors.is_empty() {
                return Err((
                    format!(
                        "the body does not match `json-schema`: {}",
                        errors.join("; ")
                    ),
                    None,
                ));
            }
        }
        Ok(())
    }

    pub(super) async fn ws(&mut self, step: &WsStep) -> Result<(), StepError> {
        match step {
            WsStep::Connect { name, tenant, app } => {
                let gateway = self
                    .runner
                    .components
                    .get(GATEWAY)
                    .ok_or_else(|| {
                        format!("the ecosystem has no `{GATEWAY}` component for WebSockets")
                    })?
                    .clone();
                self.involved.insert(GATEWAY.to_owned());
                let t = self
                    .values
                    .tenants
                    .get(tenant)
                    .cloned()
                    .ok_or_else(|| format!("tenant `{tenant}` was not created for this run"))?;
                let app = self.values.text(app)?;
                let observer = Observer {
                    name: name.clone(),
                    messages: std::sync::Arc::clone(&self.messages),
                    changed: std::sync::Arc::clone(&self.changed),
                    clock: self.clock,
                };
                self.observe(Message {
                    at_ms: self.clock.now_ms(),
                    from: format!("ws:{name}"),
                    to: GATEWAY.into(),
                    kind: MessageKind::Request,
                    label: format!("connect {app}"),
                    correlation_id: None,
                });
                let started = Instant::now();
                let conn = Conn::open(
                    self.runner.platform.tls(),
                    &gateway,
                    &t.id,
                    &t.key,
                    &app,
                    super::DEFAULT_STEP_TIMEOUT,
                    observer,
                )
                .await;
                self.service += started.elapsed();
                self.conns.insert(name.clone(), conn?);
                Ok(())
            }
            WsStep::Expect {
                name,
                event,
                within,
                data,
                envelope,
            } => {
                let data = data.as_ref().map(|d| self.values.json(d)).transpose()?;
                let envelope = envelope.as_ref().map(|e| self.values.json(e)).transpose()?;
                let conn = self.conn(name)?;
                let started = Instant::now();
                let result = conn
                    .expect(event, data.as_ref(), envelope.as_ref(), *within)
                    .await;
                self.service += started.elapsed();
                result
                    .map(|_| ())
                    .map_err(|m| StepError::from(format!("WebSocket `{name}`: {m}")))
            }
            WsStep::ExpectNone {
                name,
                event,
                duration,
            } => {
                let conn = self.conn(name)?;
                let started = Instant::now();
                let result = conn.expect_none(event.as_deref(), *duration).await;
                self.service += started.elapsed();
                result.map_err(|m| StepError::from(format!("WebSocket `{name}`: {m}")))
            }
            WsStep::Send { name, event, data } => {
                let data = data.as_ref().map(|d| self.values.json(d)).transpose()?;
                self.observe(Message {
                    at_ms: self.clock.now_ms(),
                    from: format!("ws:{name}"),
                    to: GATEWAY.into(),
                    kind: MessageKind::Event,
                    label: event.clone(),
                    correlation_id: None,
                });
                self.conn(name)?
                    .send(event, data.as_ref())
                    .await
                    .map_err(StepError::from)
            }
        }
    }

    fn conn(&self, name: &str) -> Result<&Conn, StepError> {
        self.conns.get(name).ok_or_else(|| {
            StepError::from(format!(
                "WebSocket `{name}` is not open (its `connect` step failed or has not run)"
            ))
        })
    }
}

fn path_only(path: &str) -> &str {
    path.split('?').next().unwrap_or(path)
}

fn request_text(
    method: &reqwest::Method,
    url: &str,
    headers: &[(String, String)],
    body: Option<&str>,
) -> String {
    let mut out = format!("{method} {url}\n");
    for (name, value) in headers {
        let _ = writeln!(out, "{name}: {}", shown_header(name, value));
    }
    if let Some(body) = body {
        out.push('\n');
        out.push_str(&check::cut(body.to_owned(), BODY_LIMIT));
        out.push('\n');
    }
    out
}

fn response_text(status: u16, headers: &[(String, String)], body: &[u8]) -> String {
    let mut out = format!("{status}\n");
    for (name, value) in headers {
        let _ = writeln!(out, "{name}: {}", shown_header(name, value));
    }
    out.push('\n');
    let text = match serde_json::from_slice::<Value>(body) {
        Ok(v) => serde_json::to_string_pretty(&v).unwrap_or_default(),
        Err(_) => String::from_utf8_lossy(body).into_owned(),
    };
    if text.len() > BODY_LIMIT {
        let mut end = BODY_LIMIT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let _ = write!(out, "{}\n… ({} bytes in all)", &text[..end], body.len());
    } else {
        out.push_str(&text);
    }
    out.push('\n');
    out
}

/// A header value as shown in output: secrets keep a short prefix only.
pub(super) fn shown_header(name: &str, value: &str) -> String {
    if SECRET_HEADERS.iter().any(|s| s.eq_ignore_ascii_case(name)) {
        let keep: String = value.chars().take(6).collect();
        format!("{keep}…[redacted]")
    } else {
        value.to_owned()
    }
}
