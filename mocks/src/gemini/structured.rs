//! Structured output of `generateContent`: `generationConfig.responseMimeType`
//! `application/json` or `text/x.enum` with `responseSchema` (Gemini's
//! OpenAPI subset, what the Python SDK makes of a Pydantic model, `list[...]`
//! or an `Enum`) or `responseJsonSchema` (a JSON Schema).
//!
//! The SDK parses the reply into the caller's type (`response.parsed`) and
//! quietly leaves it `None` when the text does not fit, so a mock answering
//! free text would let the code under test run on nothing. Hence:
//!
//! - a reply from a script rule (`reply: { json: ... }`, or `text:` holding
//!   JSON, or for `text/x.enum` one of the values) is sent when it is valid
//!   against the schema; when it is not, the call fails with 500 naming the
//!   rule and where the reply does not fit: the test's script is wrong, and
//!   saying so beats sending what the real service never would;
//! - when no rule matches, the reply is built from the schema
//!   ([`crate::schema::instance`], seeded by the prompt, so the same prompt
//!   gets the same value);
//! - a rule that calls a function still calls it (the model may call a tool
//!   before it answers in the schema);
//! - as the real service does, a schema with another mime type, or both
//!   kinds of schema at once, is a 400 `INVALID_ARGUMENT`.
//!
//! `application/json` without a schema keeps the earlier behaviour: a JSON
//! reply as is, free text wrapped as `{"answer": text}`.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

use super::google_error;
use crate::schema;
use crate::script::Reply;

/// The shape a request asks its answer in.
#[derive(Debug)]
pub(super) enum Format<'a> {
    /// Free text (no mime type, `text/plain`, anything without a schema).
    Text,
    /// `application/json` without a schema.
    AnyJson,
    /// `application/json` valid against this schema.
    Json(&'a Value, &'static str),
    /// `text/x.enum`: one of the values of this schema, as plain text.
    Enum(&'a Value, &'static str),
}

/// Reads `generationConfig`; `Err` is the 400 the service answers.
#[expect(
    clippy::result_large_err,
    reason = "an axum Response is the natural rejection of a handler helper"
)]
pub(super) fn format_of(request: &Value) -> Result<Format<'_>, Response> {
    let config = request.get("generationConfig");
    let get = |key: &str| config.and_then(|c| c.get(key)).filter(|v| !v.is_null());
    let mime = get("responseMimeType")
        .and_then(Value::as_str)
        .unwrap_or("text/plain");
    let schema = match (get("responseSchema"), get("responseJsonSchema")) {
        (Some(_), Some(_)) => return Err(bad_request(
            "* GenerateContentRequest.generation_config: response_schema and response_json_schema cannot both be set.\n",
        )),
        (Some(s), None) => Some((s, "responseSchema")),
        (None, Some(s)) => Some((s, "responseJsonSchema")),
        (None, None) => None,
    };
    match (mime, schema) {
        ("application/json", Some((s, field))) => Ok(Format::Json(s, field)),
        ("text/x.enum", Some((s, field))) => Ok(Format::Enum(s, field)),
        ("application/json", None) => Ok(Format::AnyJson),
        ("text/x.enum", None) => Err(bad_request(
            "* GenerateContentRequest.generation_config.response_schema: text/x.enum needs a response_schema with an enum.\n",
        )),
        (other, Some(_)) => Err(bad_request(&format!(
            "* GenerateContentRequest.generation_config.response_mime_type: a response schema needs application/json or text/x.enum, not {other}.\n"
        ))),
        (_, None) => Ok(Format::Text),
    }
}

/// The reply in the requested shape. `rule` names the script rule that gave
/// `reply` (`None`: the default reply, which the schema replaces).
#[expect(
    clippy::result_large_err,
    reason = "an axum Response is the natural rejection of a handler helper"
)]
pub(super) fn shape(
    format: &Format<'_>,
    reply: Reply,
    rule: Option<&str>,
    seed: &str,
) -> Result<Reply, Response> {
    let Reply::Text(text) = reply else {
        return Ok(reply);
    };
    match *format {
        Format::Text => Ok(Reply::Text(text)),
        Format::AnyJson => Ok(Reply::Text(
            if serde_json::from_str::<Value>(&text).is_ok() {
                text
            } else {
                json!({ "answer": text }).to_string()
            },
        )),
        Format::Json(schema, field) | Format::Enum(schema, field) => {
            let as_enum = matches!(format, Format::Enum(..));
            let Some(rule) = rule else {
                let value = schema::instance(schema, seed).map_err(|e| {
                    bad_request(&format!(
                        "* GenerateContentRequest.generation_config.{field}: no value fits this schema ({e}).\n"
                    ))
                })?;
                return Ok(Reply::Text(match value {
                    Value::String(s) if as_enum => s,
                    other => other.to_string(),
                }));
            };
            let value = if as_enum {
                Ok(Value::String(text.trim_matches('"').to_owned()))
            } else {
                serde_json::from_str::<Value>(&text).map_err(|e| format!("it is not JSON ({e})"))
            };
            value
                .and_then(|v| schema::validate(schema, &v).map_err(|e| e.to_string()))
                .map_err(|why| {
                    google_error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        &format!("tekup-mocks: the scripted reply of rule `{rule}` does not fit the request's {field}: {why}."),
                    )
                })?;
            Ok(Reply::Text(text))
        }
    }
}

fn bad_request(message: &str) -> Response {
    google_error(StatusCode::BAD_REQUEST, message)
}
