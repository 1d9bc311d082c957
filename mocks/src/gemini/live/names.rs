//! Names of the Live API's client messages, checked as the client wrote them.
//!
//! The protobuf JSON parser of the real service refuses a name it does not
//! know (`Invalid JSON payload received. Unknown name "x" at 'realtime_input':
//! Cannot find field.`) and so does the mock, before it normalizes snake_case
//! to camelCase, so that the reason names the key the client sent.

use serde_json::Value;

use super::{invalid, Close};
use crate::gemini::camel;

const MESSAGE_KINDS: &[&str] = &[
    "setup",
    "clientContent",
    "realtimeInput",
    "toolResponse",
    "contextUpdate",
];
const REALTIME_FIELDS: &[&str] = &[
    "mediaChunks",
    "audio",
    "video",
    "text",
    "activityStart",
    "activityEnd",
    "audioStreamEnd",
];

/// The first key of `object` that is not in `allowed` (camelCase names; a
/// snake_case key counts as its camelCase twin), named as the client wrote it,
/// as the protobuf JSON parser names it.
fn unknown_field(object: &Value, allowed: &[&str], at: &str) -> Result<(), Close> {
    let Some(map) = object.as_object() else {
        return Err(invalid(format!(
            "Invalid JSON payload received. Expected an object at '{at}'."
        )));
    };
    match map.keys().find(|k| !allowed.contains(&camel(k).as_str())) {
        Some(key) if at.is_empty() => Err(invalid(format!(
            "Invalid JSON payload received. Unknown name \"{key}\": Cannot find field."
        ))),
        Some(key) => Err(invalid(format!(
            "Invalid JSON payload received. Unknown name \"{key}\" at '{at}': Cannot find field."
        ))),
        None => Ok(()),
    }
}

/// `object[name]`, written in camelCase or snake_case.
fn field<'a>(object: &'a Value, name: &str) -> Option<&'a Value> {
    object
        .as_object()?
        .iter()
        .find(|(k, _)| camel(k) == name)
        .map(|(_, v)| v)
}

/// Checks the names of a client message as the client wrote them, before
/// they are normalized: an unknown name is refused, never ignored.
pub(super) fn check_names(raw: &Value) -> Result<(), Close> {
    unknown_field(raw, MESSAGE_KINDS, "")?;
    if let Some(body) = field(raw, "clientContent") {
        unknown_field(body, &["turns", "turnComplete"], "client_content")?;
    }
    if let Some(body) = field(raw, "toolResponse") {
        unknown_field(body, &["functionResponses"], "tool_response")?;
    }
    if let Some(body) = field(raw, "contextUpdate") {
        unknown_field(body, &["systemInstruction", "tools"], "context_update")?;
    }
    if let Some(body) = field(raw, "realtimeInput") {
        unknown_field(body, REALTIME_FIELDS, "realtime_input")?;
        let chunks = field(body, "mediaChunks").and_then(Value::as_array);
        let blobs = chunks.into_iter().flatten().map(|b| ("media_chunks", b));
        let single = ["audio", "video"]
            .into_iter()
            .filter_map(|f| field(body, f).map(|b| (f, b)));
        for (name, blob) in blobs.chain(single) {
            unknown_field(
                blob,
                &["data", "mimeType"],
                &format!("realtime_input.{name}"),
            )?;
        }
    }
    Ok(())
}

pub(super) fn activity_refused(signal: &str) -> String {
    format!("realtime_input.{signal} needs setup.realtimeInputConfig.automaticActivityDetection.disabled = true.")
}
