//! Running an `http` step: the request as the step describes it (with the
//! tenant's key, the app and a correlation id), the response checked
//! against `expect`, and values saved from it.

use std::fmt::Write as _;
use std::time::Instant;

use serde_json::Value;

use super::{body, HttpExpect, HttpStep};
use crate::report::{Message, MessageKind};
use crate::scenario::kinds::{StepCx, StepError};
use crate::scenario::run::{check, Values};

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

pub(super) async fn http(cx: &mut StepCx<'_, '_>, step: &HttpStep) -> Result<(), StepError> {
    let base = cx.url_of(&step.service)?;
    cx.involve(&step.service);
    let path = cx.values.text(&step.request.path)?;
    let url = body::url(
        cx.values,
        &format!("{}{}", base.trim_end_matches('/'), path),
        &step.request.query,
    )?;
    let method = reqwest::Method::from_bytes(step.request.method.as_bytes())
        .map_err(|_| format!("`{}` is not an HTTP method", step.request.method))?;
    let mut headers: Vec<(String, String)> = Vec::new();
    if let Some(name) = &step.tenant {
        let tenant = cx
            .values
            .tenants
            .get(name)
            .cloned()
            .ok_or_else(|| format!("tenant `{name}` was not created for this run"))?;
        headers.push(("x-tenant-key".into(), tenant.key));
        headers.push(("x-tenant-id".into(), tenant.id));
    }
    if let Some(app) = &step.app {
        headers.push(("x-source-app".into(), cx.values.text(app)?));
    }
    let correlation = cx.correlation_id();
    headers.push(("x-correlation-id".into(), correlation.clone()));
    // A new trace of the run's: the spans it causes are the run's own.
    headers.push(("traceparent".into(), cx.traceparent()));
    if let Some(cookie) = body::cookie(cx.values, &step.request.cookies)? {
        headers.push(("cookie".into(), cookie));
    }
    let encoded = match &step.request.body {
        Some(b) => Some(body::encode(cx.values, b).await?),
        None => None,
    };
    if let Some(encoded) = &encoded {
        headers.push(("content-type".into(), encoded.content_type.clone()));
    }
    for (name, value) in &step.request.headers {
        let value = cx.values.text(value)?;
        let name = name.to_ascii_lowercase();
        headers.retain(|(n, _)| *n != name);
        headers.push((name, value));
    }
    let body = step
        .request
        .json
        .as_ref()
        .map(|j| cx.values.json(j))
        .transpose()?;
    let shown = match (&body, &encoded) {
        (Some(json), _) => Some(serde_json::to_string_pretty(json).unwrap_or_default()),
        (None, Some(e)) => Some(String::from_utf8_lossy(&e.bytes).into_owned()),
        (None, None) => None,
    };
    let request_text = request_text(&method, &url, &headers, shown.as_deref());
    let mut request = cx.client().request(method.clone(), &url);
    for (name, value) in &headers {
        request = request.header(name.as_str(), value.as_str());
    }
    if let Some(body) = &body {
        request = request.json(body);
    } else if let Some(encoded) = encoded {
        request = request.body(encoded.bytes);
    }
    let target = step.service.clone();
    cx.observe(Message {
        at_ms: cx.clock.now_ms(),
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
            cx.waited(sent.elapsed());
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
    cx.waited(sent.elapsed());
    let bytes = bytes.map_err(|e| StepError {
        message: format!("{method} {url}: reading the response failed: {e}"),
        request: Some(request_text.clone()),
        ..StepError::default()
    })?;
    cx.observe(Message {
        at_ms: cx.clock.now_ms(),
        from: target,
        to: "harness".into(),
        kind: MessageKind::Response,
        label: status.as_u16().to_string(),
        correlation_id: Some(correlation),
    });
    *cx.note = Some(status.as_u16().to_string());
    let json: Option<Value> = serde_json::from_slice(&bytes).ok();
    let exchange = |message: String, diff: Option<String>| StepError {
        message,
        diff,
        request: Some(request_text.clone()),
        response: Some(response_text(status.as_u16(), &response_headers, &bytes)),
    };
    if let Some(expect) = &step.expect {
        check_response(
            cx.values,
            expect,
            status.as_u16(),
            &response_headers,
            json.as_ref(),
        )
        .map_err(|(m, d)| exchange(m, d))?;
        let text = String::from_utf8_lossy(&bytes);
        for want in &expect.body_contains {
            let want = cx.values.text(want)?;
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
        let root = json
            .as_ref()
            .ok_or_else(|| exchange(format!("`save: {name}`: the response is not JSON"), None))?;
        let value = check::json_path(root, path)
            .map_err(|e| exchange(format!("`save: {name}`: {e}"), None))?
            .ok_or_else(|| {
                exchange(
                    format!("`save: {name}`: `{path}` is not in the response"),
                    None,
                )
            })?;
        cx.values.saved.insert(name.clone(), value.clone());
    }
    Ok(())
}

fn check_response(
    values: &Values,
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
        let want = values.json(want).map_err(|e| (e, None))?;
        let got = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str());
        if let Some(why) = check::header(name, &want, got) {
            return Err((why, None));
        }
    }
    if let Some(want) = &expect.json {
        let want = values.json(want).map_err(|e| (e, None))?;
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
