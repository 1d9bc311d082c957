//! The Responses API: `POST /v1/responses` (plain and `stream: true`),
//! `GET` and `DELETE /v1/responses/{id}`.
//!
//! The request's input items are turned into the chat-style conversation that
//! [`super::chat::prompt_of`] reads, so one script answers both endpoints the
//! same way. The mock keeps what the real service keeps: every response
//! created with `store` (the default) is retrievable, and its conversation —
//! earlier turns, this input, this output — is what a follow-up with
//! `previous_response_id` continues, which is how a function call made in one
//! response is answered by a `function_call_output` in the next.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

mod stream;

use self::stream::{output_item, stream};
use super::answer::{self, Answer, Constraints, Format, Output};
use super::chat::{prompt_of, text_of};
use super::structured::{Dialect, JsonSchema};
use super::{error_response, invalid, models, OpenAiState};
use crate::ids;
use crate::script::estimate_tokens;

/// Smallest `max_output_tokens` the API accepts.
const MIN_OUTPUT_TOKENS: u64 = 16;

/// Responses created with `store`, by id.
#[derive(Debug, Default)]
pub(crate) struct ResponseStore(Mutex<HashMap<String, Stored>>);

#[derive(Debug, Clone)]
struct Stored {
    /// The response object as `GET` returns it.
    response: Value,
    /// Chat-style messages: all turns up to and including this response's output.
    conversation: Vec<Value>,
}

impl ResponseStore {
    fn get(&self, id: &str) -> Option<Stored> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned()
    }

    fn insert(&self, id: String, stored: Stored) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, stored);
    }

    fn remove(&self, id: &str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id)
            .is_some()
    }

    pub(crate) fn clear(&self) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

/// `POST /v1/responses`.
pub(super) async fn create(State(state): State<Arc<OpenAiState>>, body: Bytes) -> Response {
    let Ok(Value::Object(request)) = serde_json::from_slice::<Value>(&body) else {
        return invalid(
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)",
            "",
            None,
        );
    };
    let request = Value::Object(request);
    match respond(&state, &request) {
        Ok(created) => {
            if request.get("stream").and_then(Value::as_bool) == Some(true) {
                stream(&created)
            } else {
                Json(created.response).into_response()
            }
        }
        Err(refused) => refused,
    }
}

/// `GET /v1/responses/{id}`.
pub(super) async fn retrieve(
    State(state): State<Arc<OpenAiState>>,
    Path(id): Path<String>,
) -> Response {
    match state.responses.get(&id) {
        Some(stored) => Json(stored.response).into_response(),
        None => not_found(&id),
    }
}

/// `DELETE /v1/responses/{id}`.
pub(super) async fn delete(
    State(state): State<Arc<OpenAiState>>,
    Path(id): Path<String>,
) -> Response {
    if state.responses.remove(&id) {
        Json(json!({ "id": id, "object": "response.deleted", "deleted": true })).into_response()
    } else {
        not_found(&id)
    }
}

fn not_found(id: &str) -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        &format!("Response with id '{id}' not found."),
        "invalid_request_error",
        Value::Null,
        Value::Null,
    )
}

/// A created response with the parts the stream is made of.
struct Created {
    response: Value,
    answer: Answer,
    item_id: String,
}

#[expect(
    clippy::result_large_err,
    reason = "an axum Response is the natural rejection of a handler helper"
)]
fn respond(state: &OpenAiState, request: &Value) -> Result<Created, Response> {
    let Some(model) = request.get("model").and_then(Value::as_str) else {
        return Err(invalid(
            "Missing required parameter: 'model'.",
            "model",
            Some("missing_required_parameter"),
        ));
    };
    models::require(model)?;
    let previous_id = request.get("previous_response_id").and_then(Value::as_str);
    let mut conversation = match previous_id {
        Some(id) => match state.responses.get(id) {
            Some(previous) => previous.conversation,
            None => {
                return Err(invalid(
                    &format!("Previous response with id '{id}' not found."),
                    "previous_response_id",
                    Some("previous_response_not_found"),
                ))
            }
        },
        None => Vec::new(),
    };
    let input = match request.get("input") {
        Some(Value::String(text)) => vec![json!({ "role": "user", "content": text })],
        Some(Value::Array(items)) => messages_of(items, &conversation)?,
        None | Some(Value::Null) if previous_id.is_some() => Vec::new(),
        None | Some(Value::Null) => {
            return Err(invalid(
                "Missing required parameter: 'input'.",
                "input",
                Some("missing_required_parameter"),
            ))
        }
        Some(other) => {
            return Err(invalid(
                &format!("Invalid type for 'input': expected one of a string or array of input items, but got {} instead.", crate::schema::kind(other)),
                "input",
                Some("invalid_type"),
            ))
        }
    };
    conversation.extend(input);
    let max_output_tokens = match request.get("max_output_tokens") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_u64() {
            Some(n) if n >= MIN_OUTPUT_TOKENS => Some(n),
            _ => return Err(invalid(
                &format!("Invalid 'max_output_tokens': integer below minimum value. Expected a value >= {MIN_OUTPUT_TOKENS}, but got {v} instead."),
                "max_output_tokens",
                Some("integer_below_min_value"),
            )),
        },
    };
    let (format, format_echo) = text_format(request)?;
    let instructions = request
        .get("instructions")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let tools = tools_of(request);
    let mut messages = Vec::with_capacity(conversation.len() + 1);
    if let Some(text) = &instructions {
        messages.push(json!({ "role": "developer", "content": text }));
    }
    messages.extend(conversation.iter().cloned());
    let chat_tools: Vec<Value> = tools
        .iter()
        .filter(|t| t.get("type").and_then(Value::as_str) == Some("function"))
        .map(|t| json!({ "type": "function", "function": { "name": t["name"] } }))
        .collect();
    let prompt = prompt_of(&json!({ "tools": chat_tools }), &messages);
    let tool_choice = request
        .get("tool_choice")
        .filter(|v| !v.is_null())
        .cloned()
        .unwrap_or_else(|| Value::from("auto"));
    let constraints = Constraints {
        tool_choice_none: tool_choice == "none",
        format,
        max_tokens: max_output_tokens,
    };
    let answer = answer::answer(state, &prompt, &constraints)?;

    let id = ids::hex_id("resp_", 48);
    let item_id = match answer.output {
        Output::Text(_) => ids::hex_id("msg_", 48),
        Output::Call { .. } => ids::hex_id("fc_", 48),
    };
    let call_id = ids::alnum_id("call_", 24);
    let item = output_item(&answer, &item_id, &call_id, true);
    let input_tokens: u64 = messages
        .iter()
        .map(|m| estimate_tokens(&m.to_string()))
        .sum();
    let output_tokens = answer.tokens();
    let created_at = ids::unix_now();
    let store = request.get("store").and_then(Value::as_bool) != Some(false);
    let response = json!({
        "id": id,
        "object": "response",
        "created_at": created_at,
        "status": if answer.truncated { "incomplete" } else { "completed" },
        "background": false,
        "completed_at": if answer.truncated { Value::Null } else { Value::from(created_at) },
        "error": null,
        "incomplete_details": if answer.truncated { json!({ "reason": "max_output_tokens" }) } else { Value::Null },
        "instructions": instructions,
        "max_output_tokens": max_output_tokens,
        "max_tool_calls": null,
        "model": model,
        "output": [item],
        "parallel_tool_calls": request.get("parallel_tool_calls").and_then(Value::as_bool).unwrap_or(true),
        "previous_response_id": previous_id,
        "reasoning": { "effort": null, "summary": null },
        "service_tier": "default",
        "store": store,
        "temperature": request.get("temperature").and_then(Value::as_f64).unwrap_or(1.0),
        "text": { "format": format_echo, "verbosity": "medium" },
        "tool_choice": tool_choice,
        "tools": tools,
        "top_logprobs": 0,
        "top_p": request.get("top_p").and_then(Value::as_f64).unwrap_or(1.0),
        "truncation": "disabled",
        "usage": {
            "input_tokens": input_tokens,
            "input_tokens_details": { "cached_tokens": 0, "cache_write_tokens": 0 },
            "output_tokens": output_tokens,
            "output_tokens_details": { "reasoning_tokens": 0 },
            "total_tokens": input_tokens + output_tokens
        },
        "user": null,
        "metadata": request.get("metadata").filter(|m| m.is_object()).cloned().unwrap_or_else(|| json!({}))
    });
    if store {
        conversation.push(match &answer.output {
            Output::Text(text) => json!({ "role": "assistant", "content": text }),
            Output::Call { name, arguments } => json!({
                "role": "assistant", "content": null,
                "tool_calls": [{ "id": call_id, "type": "function",
                                 "function": { "name": name, "arguments": arguments } }]
            }),
        });
        state.responses.insert(
            id,
            Stored {
                response: response.clone(),
                conversation,
            },
        );
    }
    Ok(Created {
        response,
        answer,
        item_id,
    })
}

/// Input items as chat-style messages; `earlier` are the turns before them.
#[expect(
    clippy::result_large_err,
    reason = "an axum Response is the natural rejection of a handler helper"
)]
fn messages_of(items: &[Value], earlier: &[Value]) -> Result<Vec<Value>, Response> {
    let mut messages: Vec<Value> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let kind = item.get("type").and_then(Value::as_str);
        match kind {
            None | Some("message") => {
                let role = item.get("role").and_then(Value::as_str).unwrap_or_default();
                if !matches!(role, "user" | "assistant" | "system" | "developer") {
                    return Err(invalid(
                        &format!("Invalid value: '{role}'. Supported values are: 'assistant', 'system', 'developer', and 'user'."),
                        &format!("input[{i}].role"),
                        Some("invalid_value"),
                    ));
                }
                messages.push(json!({ "role": role, "content": text_of(item.get("content")) }));
            }
            Some("function_call") => messages.push(json!({
                "role": "assistant", "content": null,
                "tool_calls": [{ "id": item["call_id"], "type": "function",
                                 "function": { "name": item["name"], "arguments": item["arguments"] } }]
            })),
            Some("function_call_output") => {
                let call_id = item.get("call_id").and_then(Value::as_str).unwrap_or_default();
                let called = earlier.iter().chain(messages.iter()).any(|m| {
                    m.get("tool_calls")
                        .and_then(Value::as_array)
                        .is_some_and(|calls| calls.iter().any(|c| c["id"] == call_id))
                });
                if !called {
                    return Err(invalid(
                        &format!("No tool call found for function call output with call_id {call_id}."),
                        "input",
                        None,
                    ));
                }
                let output = match item.get("output") {
                    Some(Value::String(s)) => s.clone(),
                    other => text_of(other),
                };
                messages.push(json!({ "role": "tool", "tool_call_id": call_id, "content": output }));
            }
            // Items the mock does not model (reasoning, built-in tool calls)
            // carry no text a script rule looks at.
            Some(_) => {}
        }
    }
    Ok(messages)
}

/// The request's tools as the response echoes them (function tools are strict unless told otherwise).
fn tools_of(request: &Value) -> Vec<Value> {
    request
        .get("tools")
        .and_then(Value::as_array)
        .map(|tools| {
            tools
                .iter()
                .map(|t| {
                    if t.get("type").and_then(Value::as_str) != Some("function") {
                        return t.clone();
                    }
                    json!({
                        "type": "function",
                        "name": t["name"],
                        "description": t.get("description").cloned().unwrap_or(Value::Null),
                        "parameters": t.get("parameters").cloned().unwrap_or(Value::Null),
                        "strict": t.get("strict").and_then(Value::as_bool).unwrap_or(true)
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `text.format`: the format asked for and the object the response echoes.
#[expect(
    clippy::result_large_err,
    reason = "an axum Response is the natural rejection of a handler helper"
)]
fn text_format(request: &Value) -> Result<(Format, Value), Response> {
    let Some(format) = request.pointer("/text/format").filter(|v| !v.is_null()) else {
        return Ok((Format::Text, json!({ "type": "text" })));
    };
    match format.get("type").and_then(Value::as_str) {
        Some("text") => Ok((Format::Text, json!({ "type": "text" }))),
        Some("json_object") => Ok((Format::JsonObject, json!({ "type": "json_object" }))),
        Some("json_schema") => {
            let schema = JsonSchema::parse(format, Dialect::Responses)?;
            let echo = schema.echo();
            Ok((Format::JsonSchema(schema), echo))
        }
        Some(other) => Err(invalid(
            &format!("Invalid value: '{other}'. Supported values are: 'text', 'json_object', and 'json_schema'."),
            "text.format.type",
            Some("invalid_value"),
        )),
        None => Err(invalid(
            "Missing required parameter: 'text.format.type'.",
            "text.format.type",
            Some("missing_required_parameter"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_call_output_needs_its_call() {
        let items =
            json!([{ "type": "function_call_output", "call_id": "call_1", "output": "{}" }]);
        assert!(messages_of(items.as_array().unwrap(), &[]).is_err());
        let earlier = [json!({ "role": "assistant", "content": null,
            "tool_calls": [{ "id": "call_1", "type": "function",
                             "function": { "name": "f", "arguments": "{}" } }] })];
        let messages = messages_of(items.as_array().unwrap(), &earlier).unwrap();
        assert_eq!(messages[0]["role"], "tool");
        assert_eq!(messages[0]["tool_call_id"], "call_1");
    }

    #[test]
    fn unmodelled_items_are_skipped_and_roles_checked() {
        let items = json!([
            { "type": "reasoning", "id": "rs_1", "summary": [] },
            { "role": "user", "content": [{ "type": "input_text", "text": "hi" }] }
        ]);
        let messages = messages_of(items.as_array().unwrap(), &[]).unwrap();
        assert_eq!(messages, vec![json!({ "role": "user", "content": "hi" })]);
        let bad = json!([{ "role": "robot", "content": "x" }]);
        assert!(messages_of(bad.as_array().unwrap(), &[]).is_err());
    }
}
