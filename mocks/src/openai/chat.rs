//! `POST /v1/chat/completions`, plain and streamed (`stream: true`).
//!
//! The plain answer is serialized from borrowed, typed structs ([`Whole`])
//! rather than built as a `serde_json::Value`: a `Value` allocates a map node
//! and a `String` per key and frees them all again, and under a
//! closed-loop load that, with the allocator churn it caused, was the largest
//! item of the mock's per-request cost (callgrind, `benches/mocks_throughput`).
//! The streamed chunks are few per request and stay `Value`s.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::answer::{self, split_chars, split_words, Answer, Constraints, Format, Output};
use super::models::{self, Model};
use super::structured::{Dialect, JsonSchema};
use super::{invalid, OpenAiState};
use crate::ids;
use crate::script::{estimate_tokens, Prompt};

pub(super) async fn completions(State(state): State<Arc<OpenAiState>>, body: Bytes) -> Response {
    let request: Value = match serde_json::from_slice(&body) {
        Ok(Value::Object(o)) => Value::Object(o),
        Ok(_) | Err(_) => {
            return invalid(
                "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)",
                "",
                None,
            )
        }
    };
    let Some(model) = request.get("model").and_then(Value::as_str) else {
        return invalid("you must provide a model parameter", "model", None);
    };
    let messages = match request.get("messages") {
        Some(Value::Array(m)) if !m.is_empty() => m,
        Some(Value::Array(_)) => {
            return invalid(
                "[] is too short - 'messages'",
                "messages",
                Some("empty_array"),
            )
        }
        _ => {
            return invalid(
                "Missing required parameter: 'messages'.",
                "messages",
                Some("missing_required_parameter"),
            )
        }
    };
    for (i, m) in messages.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str).unwrap_or_default();
        if !matches!(
            role,
            "system" | "developer" | "user" | "assistant" | "tool" | "function"
        ) {
            return invalid(
                &format!("Invalid value: '{role}'. Supported values are: 'system', 'assistant', 'user', 'function', 'tool', and 'developer'."),
                &format!("messages[{i}].role"),
                Some("invalid_value"),
            );
        }
    }
    let known = match models::require(model) {
        Ok(m) => m,
        Err(refused) => return refused,
    };
    let max_tokens = match token_limit(&request, known) {
        Ok(limit) => limit,
        Err(refused) => return refused,
    };
    let format = match response_format(&request) {
        Ok(f) => f,
        Err(refused) => return refused,
    };
    let prompt = prompt_of(&request, messages);
    let constraints = Constraints {
        tool_choice_none: request.get("tool_choice").and_then(Value::as_str) == Some("none"),
        format,
        max_tokens,
    };
    let answer = match answer::answer(&state, &prompt, &constraints) {
        Ok(a) => a,
        Err(refused) => return refused,
    };
    let n = request
        .get("n")
        .and_then(Value::as_u64)
        .unwrap_or(1)
        .clamp(1, 8) as usize;
    let prompt_tokens: u64 = messages
        .iter()
        .map(|m| estimate_tokens(&m.to_string()))
        .sum();
    let completion = Completion {
        id: ids::alnum_id("chatcmpl-", 29),
        created: ids::unix_now(),
        model: model.to_owned(),
        answer,
        tool_call_id: ids::alnum_id("call_", 24),
        n,
        prompt_tokens,
    };
    if request.get("stream").and_then(Value::as_bool) == Some(true) {
        let include_usage = request
            .pointer("/stream_options/include_usage")
            .and_then(Value::as_bool)
            == Some(true);
        return stream(completion, include_usage);
    }
    Json(completion.whole()).into_response()
}

/// `max_completion_tokens`, or the older `max_tokens` that reasoning models refuse.
#[expect(
    clippy::result_large_err,
    reason = "an axum Response is the natural rejection of a handler helper"
)]
fn token_limit(request: &Value, model: &Model) -> Result<Option<u64>, Response> {
    let legacy = request.get("max_tokens").filter(|v| !v.is_null());
    if legacy.is_some() && model.reasoning {
        return Err(invalid(
            "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.",
            "max_tokens",
            Some("unsupported_parameter"),
        ));
    }
    for name in ["max_completion_tokens", "max_tokens"] {
        match request.get(name) {
            None | Some(Value::Null) => {}
            Some(v) => match v.as_u64() {
                Some(n) if n >= 1 => return Ok(Some(n)),
                _ => {
                    return Err(invalid(
                        &format!("Invalid '{name}': integer below minimum value. Expected a value >= 1, but got {v} instead."),
                        name,
                        Some("integer_below_min_value"),
                    ))
                }
            },
        }
    }
    Ok(None)
}

/// `response_format`: `text`, `json_object` or `json_schema`.
#[expect(
    clippy::result_large_err,
    reason = "an axum Response is the natural rejection of a handler helper"
)]
fn response_format(request: &Value) -> Result<Format, Response> {
    let Some(format) = request.get("response_format").filter(|v| !v.is_null()) else {
        return Ok(Format::Text);
    };
    match format.get("type").and_then(Value::as_str) {
        Some("text") => Ok(Format::Text),
        Some("json_object") => Ok(Format::JsonObject),
        Some("json_schema") => match format.get("json_schema") {
            Some(inner) if inner.is_object() => {
                JsonSchema::parse(inner, Dialect::Chat).map(Format::JsonSchema)
            }
            _ => Err(invalid(
                "Missing required parameter: 'response_format.json_schema'.",
                "response_format.json_schema",
                Some("missing_required_parameter"),
            )),
        },
        Some(other) => Err(invalid(
            &format!("Invalid value: '{other}'. Supported values are: 'json_object', 'json_schema', and 'text'."),
            "response_format.type",
            Some("invalid_value"),
        )),
        None => Err(invalid(
            "Missing required parameter: 'response_format.type'.",
            "response_format.type",
            Some("missing_required_parameter"),
        )),
    }
}

/// Reduces the conversation to what the script looks at.
pub(super) fn prompt_of(request: &Value, messages: &[Value]) -> Prompt {
    let tools = request
        .get("tools")
        .and_then(Value::as_array)
        .map(|t| {
            t.iter()
                .filter_map(|t| t.pointer("/function/name").and_then(Value::as_str))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let system = messages
        .iter()
        .filter(|m| {
            matches!(
                m.get("role").and_then(Value::as_str),
                Some("system" | "developer")
            )
        })
        .map(|m| text_of(m.get("content")))
        .collect::<Vec<_>>()
        .join("\n");
    let user = messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .map(|m| text_of(m.get("content")))
        .unwrap_or_default();
    let last = messages.last();
    let tool_result = last
        .filter(|m| m.get("role").and_then(Value::as_str) == Some("tool"))
        .map(|m| {
            let id = m
                .get("tool_call_id")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let name = messages
                .iter()
                .filter_map(|m| m.get("tool_calls").and_then(Value::as_array))
                .flatten()
                .find(|c| c.get("id").and_then(Value::as_str) == Some(id))
                .and_then(|c| c.pointer("/function/name").and_then(Value::as_str))
                .unwrap_or_default()
                .to_owned();
            let content = text_of(m.get("content"));
            (
                name,
                serde_json::from_str(&content).unwrap_or(Value::String(content)),
            )
        });
    Prompt {
        user,
        system,
        tools,
        tool_result,
    }
}

/// Message content: a string, or an array of parts of which the text ones count.
pub(super) fn text_of(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

struct Completion {
    id: String,
    created: i64,
    model: String,
    answer: Answer,
    tool_call_id: String,
    n: usize,
    prompt_tokens: u64,
}

impl Completion {
    fn usage(&self) -> Usage {
        let completion = self.answer.tokens() * self.n as u64;
        Usage {
            prompt_tokens: self.prompt_tokens,
            completion_tokens: completion,
            total_tokens: self.prompt_tokens + completion,
            prompt_tokens_details: PromptTokensDetails {
                cached_tokens: 0,
                audio_tokens: 0,
            },
            completion_tokens_details: CompletionTokensDetails {
                reasoning_tokens: 0,
                audio_tokens: 0,
                accepted_prediction_tokens: 0,
                rejected_prediction_tokens: 0,
            },
        }
    }

    fn finish_reason(&self) -> &'static str {
        match (&self.answer.output, self.answer.truncated) {
            (_, true) => "length",
            (Output::Text(_), false) => "stop",
            (Output::Call { .. }, false) => "tool_calls",
        }
    }

    /// The whole (non-streamed) completion, serialized straight from borrowed
    /// fields: building it as a `serde_json::Value` first cost a map
    /// allocation per key and as much again to drop it, the largest single
    /// item of the per-request profile (see the module docs).
    fn whole(&self) -> Whole<'_> {
        let message = match &self.answer.output {
            Output::Text(text) => WholeMessage {
                role: "assistant",
                content: Some(text),
                refusal: (),
                annotations: [],
                tool_calls: None,
            },
            Output::Call { name, arguments } => WholeMessage {
                role: "assistant",
                content: None,
                refusal: (),
                annotations: [],
                tool_calls: Some([ToolCall {
                    id: &self.tool_call_id,
                    kind: "function",
                    function: FunctionCall { name, arguments },
                }]),
            },
        };
        Whole {
            id: &self.id,
            object: "chat.completion",
            created: self.created,
            model: &self.model,
            choices: (0..self.n)
                .map(|index| WholeChoice {
                    index,
                    message: message.clone(),
                    logprobs: (),
                    finish_reason: self.finish_reason(),
                })
                .collect(),
            usage: self.usage(),
            service_tier: "default",
            system_fingerprint: "fp_tekup_mock",
        }
    }

    fn chunk(&self, choices: Value, usage: Option<Value>, include_usage: bool) -> Value {
        let mut chunk = Map::new();
        chunk.insert("id".into(), Value::from(self.id.clone()));
        chunk.insert("object".into(), Value::from("chat.completion.chunk"));
        chunk.insert("created".into(), Value::from(self.created));
        chunk.insert("model".into(), Value::from(self.model.clone()));
        chunk.insert("service_tier".into(), Value::from("default"));
        chunk.insert("system_fingerprint".into(), Value::from("fp_tekup_mock"));
        chunk.insert("choices".into(), choices);
        if include_usage {
            chunk.insert("usage".into(), usage.unwrap_or(Value::Null));
        }
        Value::Object(chunk)
    }

    /// The deltas of one choice, in order.
    fn deltas(&self) -> Vec<Value> {
        match &self.answer.output {
            Output::Text(text) => {
                let mut deltas =
                    vec![json!({ "role": "assistant", "content": "", "refusal": null })];
                deltas.extend(
                    split_words(text)
                        .into_iter()
                        .map(|piece| json!({ "content": piece })),
                );
                deltas
            }
            Output::Call { name, arguments } => {
                let mut deltas = vec![json!({
                    "role": "assistant", "content": null,
                    "tool_calls": [{ "index": 0, "id": self.tool_call_id, "type": "function",
                                     "function": { "name": name, "arguments": "" } }]
                })];
                for piece in split_chars(arguments, 8) {
                    deltas.push(json!({ "tool_calls": [{ "index": 0, "function": { "arguments": piece } }] }));
                }
                deltas
            }
        }
    }
}

/// `chat.completion`, as [`Completion::whole`] puts it on the wire.
#[derive(Serialize)]
struct Whole<'a> {
    id: &'a str,
    object: &'static str,
    created: i64,
    model: &'a str,
    choices: Vec<WholeChoice<'a>>,
    usage: Usage,
    service_tier: &'static str,
    system_fingerprint: &'static str,
}

#[derive(Serialize)]
struct WholeChoice<'a> {
    index: usize,
    message: WholeMessage<'a>,
    /// Always `null`.
    logprobs: (),
    finish_reason: &'static str,
}

#[derive(Clone, Serialize)]
struct WholeMessage<'a> {
    role: &'static str,
    /// `null` for a function call.
    content: Option<&'a str>,
    /// Always `null`.
    refusal: (),
    /// Always empty.
    annotations: [(); 0],
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[ToolCall<'a>; 1]>,
}

#[derive(Clone, Serialize)]
struct ToolCall<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionCall<'a>,
}

#[derive(Clone, Serialize)]
struct FunctionCall<'a> {
    name: &'a str,
    arguments: &'a str,
}

#[derive(Serialize)]
struct Usage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    prompt_tokens_details: PromptTokensDetails,
    completion_tokens_details: CompletionTokensDetails,
}

#[derive(Serialize)]
struct PromptTokensDetails {
    cached_tokens: u64,
    audio_tokens: u64,
}

#[derive(Serialize)]
struct CompletionTokensDetails {
    reasoning_tokens: u64,
    audio_tokens: u64,
    accepted_prediction_tokens: u64,
    rejected_prediction_tokens: u64,
}

/// Server-sent events: one `data:` line per chunk, then `data: [DONE]`.
fn stream(completion: Completion, include_usage: bool) -> Response {
    let mut events = Vec::new();
    for delta in completion.deltas() {
        let choices: Vec<Value> = (0..completion.n)
            .map(|i| json!({ "index": i, "delta": delta, "logprobs": null, "finish_reason": null }))
            .collect();
        events.push(completion.chunk(Value::Array(choices), None, include_usage));
    }
    let last: Vec<Value> = (0..completion.n)
        .map(|i| json!({ "index": i, "delta": {}, "logprobs": null, "finish_reason": completion.finish_reason() }))
        .collect();
    events.push(completion.chunk(Value::Array(last), None, include_usage));
    if include_usage {
        events.push(completion.chunk(
            json!([]),
            serde_json::to_value(completion.usage()).ok(),
            true,
        ));
    }
    let mut frames: Vec<Result<Bytes, Infallible>> = events
        .into_iter()
        .map(|e| Ok(Bytes::from(format!("data: {e}\n\n"))))
        .collect();
    frames.push(Ok(Bytes::from_static(b"data: [DONE]\n\n")));
    let body = Body::from_stream(futures_util::stream::iter(frames));
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/event-stream; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_results_are_named_by_their_call() {
        let messages = json!([
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "weather in Oslo?"}]},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "{\"temperature\": 3}"}
        ]);
        let p = prompt_of(&json!({}), messages.as_array().unwrap());
        assert_eq!(p.user, "weather in Oslo?");
        assert_eq!(p.system, "be brief");
        assert_eq!(
            p.tool_result,
            Some(("get_weather".into(), json!({"temperature": 3})))
        );
    }
}
