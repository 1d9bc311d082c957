//! Requests made from the OpenAPI documents alone: an operation's example
//! with its references filled in, sent with whatever headers a case
//! chooses, and the WebSocket handshake of the gateway.

use std::time::Duration;

use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::sweep::{Operation, Repro, Target};

/// How long one request may take; longer is a finding, not a wait.
pub(super) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// An operation's request, ready to send with a case's headers.
#[derive(Debug, Clone)]
pub(super) struct Built {
    pub service: String,
    pub method: String,
    /// Path and query.
    pub path: String,
    pub body: Option<Value>,
}

/// Builds `op`'s request; `fill` gives the id of an object a reference
/// (`<service>:<operationId>`) names, for the tenant the case is about.
pub(super) fn build(
    op: &Operation,
    fill: &dyn Fn(&str) -> Option<String>,
) -> Result<Built, String> {
    let mut path = op.path.clone();
    let mut query = Vec::new();
    for p in &op.params {
        let value = match (&p.reference, &p.example) {
            (Some(r), _) => {
                fill(r).ok_or_else(|| format!("no object for `{r}` (parameter `{}`)", p.name))?
            }
            (None, Some(example)) => match example {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            },
            (None, None) if p.schema["format"] == "uuid" => uuid::Uuid::new_v4().to_string(),
            (None, None) if !p.required => continue,
            (None, None) => return Err(format!("parameter `{}` has no example", p.name)),
        };
        match p.location.as_str() {
            "path" => path = path.replace(&format!("{{{}}}", p.name), &value),
            "query" if p.required || p.reference.is_some() => {
                query.push(format!("{}={}", p.name, urlencode(&value)));
            }
            _ => {}
        }
    }
    if !query.is_empty() {
        path = format!("{path}?{}", query.join("&"));
    }
    let body = match (&op.body_schema, &op.body_example) {
        (Some(schema), Some(example)) => Some(fill_body(schema, example.clone(), fill)?),
        (Some(_), None) => return Err("the request body has no example".into()),
        _ => None,
    };
    Ok(Built {
        service: op.service.clone(),
        method: op.method.clone(),
        path,
        body,
    })
}

/// The example with its references (`x-tekup-ref` properties) filled in and
/// every email made fresh, so that a request can be repeated without
/// meeting the uniqueness of what an earlier one made.
fn fill_body(
    schema: &Value,
    mut body: Value,
    fill: &dyn Fn(&str) -> Option<String>,
) -> Result<Value, String> {
    if let (Some(props), Some(object)) = (schema["properties"].as_object(), body.as_object_mut()) {
        for (name, prop) in props {
            if let Some(r) = prop["x-tekup-ref"].as_str() {
                let id = fill(r).ok_or_else(|| format!("no object for `{r}` (field `{name}`)"))?;
                object.insert(name.clone(), Value::String(id));
            }
        }
    }
    fresh_emails(&mut body);
    Ok(body)
}

fn fresh_emails(v: &mut Value) {
    match v {
        Value::String(s) if s.contains('@') && s.contains('.') && !s.contains(' ') => {
            *s = format!(
                "sweep-{}@example.com",
                &uuid::Uuid::new_v4().simple().to_string()[..12]
            );
        }
        Value::Array(items) => items.iter_mut().for_each(fresh_emails),
        Value::Object(map) => map.values_mut().for_each(fresh_emails),
        _ => {}
    }
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The answer to one request: the status (0 when none came) and the body.
#[derive(Debug, Clone)]
pub(super) struct Got {
    pub status: u16,
    pub body: Value,
    /// Why no answer came, when none did.
    pub error: Option<String>,
}

/// Sends `built` with `headers` (in order; a name may repeat), returning
/// the answer and the request as a [`Repro`].
pub(super) async fn send(t: &Target, built: &Built, headers: &[(String, String)]) -> (Got, Repro) {
    let base = t
        .platform
        .url(&built.service)
        .unwrap_or_default()
        .to_owned();
    let mut repro = Repro::new(&built.service, &base, &built.method, &built.path);
    for (n, v) in headers {
        repro = repro.header(n, v);
    }
    if let Some(body) = &built.body {
        repro = repro.json(body);
    }
    let method =
        reqwest::Method::from_bytes(built.method.as_bytes()).unwrap_or(reqwest::Method::GET);
    let mut request = t
        .platform
        .http()
        .request(method, format!("{base}{}", built.path))
        .timeout(REQUEST_TIMEOUT);
    for (n, v) in &repro.headers {
        request = request.header(n.as_str(), v.as_str());
    }
    if let Some(body) = &repro.body {
        request = request.body(body.clone());
    }
    let got = match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let bytes = response.bytes().await.unwrap_or_default();
            let body = serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
            Got {
                status,
                body,
                error: None,
            }
        }
        Err(e) => Got {
            status: 0,
            body: Value::Null,
            error: Some(crate::env::error_chain(&e)),
        },
    };
    (got, repro)
}

pub(super) type Ws = crate::net::WsStream;

/// The gateway's handshake with `headers`: the open connection, or the
/// status it was refused with (0 when no answer came).
pub(super) async fn handshake(
    t: &Target,
    headers: &[(String, String)],
) -> (Result<Ws, (u16, String)>, Repro) {
    let gw = &t.contract.gateway;
    let base = t.platform.url(&gw.service).unwrap_or_default().to_owned();
    let mut repro = Repro::new(&gw.service, &base, "GET", &gw.path).header("upgrade", "websocket");
    for (n, v) in headers {
        repro = repro.header(n, v);
    }
    let url = format!(
        "{}{}",
        base.replacen("http://", "ws://", 1)
            .replacen("https://", "wss://", 1),
        gw.path
    );
    let mut request = match url.as_str().into_client_request() {
        Ok(r) => r,
        Err(e) => return (Err((0, format!("not a WebSocket URL {url}: {e}"))), repro),
    };
    for (n, v) in headers {
        if let (Ok(name), Ok(value)) = (
            tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(n.as_bytes()),
            v.parse(),
        ) {
            request.headers_mut().append(name, value);
        }
    }
    let result =
        match tokio::time::timeout(REQUEST_TIMEOUT, t.platform.tls().connect_ws(request)).await {
            Err(_) => Err((0, format!("no answer within {REQUEST_TIMEOUT:?}"))),
            Ok(Ok((ws, _))) => Ok(ws),
            Ok(Err(tokio_tungstenite::tungstenite::Error::Http(response))) => {
                let status = response.status().as_u16();
                let body = response
                    .body()
                    .as_ref()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default();
                Err((status, body))
            }
            Ok(Err(e)) => Err((0, crate::net::explain(&e).unwrap_or_else(|| e.to_string()))),
        };
    (result, repro)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::Operations;
    use serde_json::json;

    #[test]
    fn references_are_filled_and_emails_made_fresh() {
        let mut ops = Operations::default();
        ops.add(json!({
            "info": { "title": "crm-api" },
            "paths": { "/contacts/{id}/leads": { "post": {
                "operationId": "associate",
                "parameters": [{ "name": "id", "in": "path", "required": true,
                    "schema": { "type": "string", "format": "uuid" }, "x-tekup-ref": "crm-api:createContact" }],
                "requestBody": { "content": { "application/json": {
                    "schema": { "type": "object", "properties": {
                        "leadId": { "type": "string", "x-tekup-ref": "flow-api:createLead" },
                        "email": { "type": "string" } } },
                    "example": { "leadId": "x", "email": "a@b.co" } } } },
                "responses": {} } } }
        }))
        .unwrap();
        let op = &ops.list[0];
        let fill = |r: &str| Some(format!("id-of-{r}"));
        let built = build(op, &fill).unwrap();
        assert_eq!(built.path, "/contacts/id-of-crm-api:createContact/leads");
        let body = built.body.unwrap();
        assert_eq!(body["leadId"], "id-of-flow-api:createLead");
        assert!(
            body["email"].as_str().unwrap().starts_with("sweep-"),
            "{body}"
        );
        let none = |_: &str| None;
        assert!(build(op, &none)
            .unwrap_err()
            .contains("crm-api:createContact"));
    }
}
