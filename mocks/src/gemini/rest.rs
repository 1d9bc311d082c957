//! Gemini REST: `models/{model}:generateContent`, `:streamGenerateContent`,
//! `:countTokens`, `:embedContent`, `:batchEmbedContents` and the model list.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::{google_error, models, normalize, prompt_of, structured, tool_names, GeminiState};
use crate::ids;
use crate::script::{estimate_tokens, Reply};
use crate::server::not_mocked_message;

pub(super) async fn list_models(
    State(s): State<Arc<GeminiState>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    if let Err((status, m)) = s.check_key(&headers, q.as_deref()) {
        return google_error(status, &m);
    }
    Json(json!({ "models": models::MODELS.iter().map(models::object).collect::<Vec<_>>() }))
        .into_response()
}

pub(super) async fn get_model(
    State(s): State<Arc<GeminiState>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    Path((version, name)): Path<(String, String)>,
) -> Response {
    if let Err((status, m)) = s.check_key(&headers, q.as_deref()) {
        return google_error(status, &m);
    }
    match models::find(&name) {
        Some(model) => Json(models::object(model)).into_response(),
        None => google_error(
            StatusCode::NOT_FOUND,
            &format!("models/{name} is not found for API version {version}."),
        ),
    }
}

pub(super) async fn model_action(
    State(s): State<Arc<GeminiState>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    Path((version, name)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    if let Err((status, m)) = s.check_key(&headers, q.as_deref()) {
        return google_error(status, &m);
    }
    let not_mocked = || {
        let path = format!("/{version}/models/{name}");
        google_error(
            StatusCode::NOT_FOUND,
            &not_mocked_message("gemini", &Method::POST, &path),
        )
    };
    let Some((model, action)) = name.split_once(':') else {
        return not_mocked();
    };
    let method = match action {
        "generateContent" | "streamGenerateContent" => "generateContent",
        "embedContent" | "batchEmbedContents" => "embedContent",
        "countTokens" => "countTokens",
        _ => return not_mocked(),
    };
    if let Err(message) = models::check(model, method, &version) {
        return google_error(StatusCode::NOT_FOUND, &message);
    }
    let request = match serde_json::from_slice::<Value>(&body) {
        Ok(v @ Value::Object(_)) => normalize(v),
        _ => {
            return google_error(
                StatusCode::BAD_REQUEST,
                "Invalid JSON payload received. Unexpected token.",
            )
        }
    };
    let sse = q
        .as_deref()
        .is_some_and(|q| q.split('&').any(|p| p == "alt=sse"));
    match action {
        "generateContent" => {
            generate(&s, model, &request).map_or_else(|e| e, |r| Json(r.whole()).into_response())
        }
        "streamGenerateContent" => {
            generate(&s, model, &request).map_or_else(|e| e, |r| r.stream(sse))
        }
        "countTokens" => {
            let contents = request
                .get("contents")
                .or_else(|| request.pointer("/generateContentRequest/contents"));
            let total: u64 = contents.and_then(Value::as_array).map_or(0, |c| {
                c.iter().map(|c| estimate_tokens(&c.to_string())).sum()
            });
            Json(json!({ "totalTokens": total, "promptTokensDetails": [{ "modality": "TEXT", "tokenCount": total }] })).into_response()
        }
        "embedContent" => {
            let text = request
                .get("content")
                .map(super::text_parts)
                .unwrap_or_default();
            let dims = request
                .get("outputDimensionality")
                .and_then(Value::as_u64)
                .unwrap_or(768) as usize;
            Json(json!({ "embedding": { "values": crate::openai_embed(&text, dims) } }))
                .into_response()
        }
        "batchEmbedContents" => {
            let embeddings: Vec<Value> = request
                .get("requests")
                .and_then(Value::as_array)
                .map(|r| {
                    r.iter()
                        .map(|r| {
                            let text = r.get("content").map(super::text_parts).unwrap_or_default();
                            let dims = r
                                .get("outputDimensionality")
                                .and_then(Value::as_u64)
                                .unwrap_or(768) as usize;
                            json!({ "values": crate::openai_embed(&text, dims) })
                        })
                        .collect()
                })
                .unwrap_or_default();
            Json(json!({ "embeddings": embeddings })).into_response()
        }
        _ => not_mocked(),
    }
}

/// A scripted generation, rendered whole or as stream chunks.
struct Generation {
    model: String,
    reply: Reply,
    prompt_tokens: u64,
    response_id: String,
}

#[expect(
    clippy::result_large_err,
    reason = "an axum Response is the natural rejection of a handler helper"
)]
fn generate(s: &GeminiState, model: &str, request: &Value) -> Result<Generation, Response> {
    let contents = match request.get("contents").and_then(Value::as_array) {
        Some(c) if !c.is_empty() => c,
        _ => {
            return Err(google_error(
                StatusCode::BAD_REQUEST,
                "* GenerateContentRequest.contents: contents is not specified\n",
            ))
        }
    };
    let prompt = prompt_of(
        contents,
        request.get("systemInstruction"),
        tool_names(request.get("tools")),
    );
    let format = structured::format_of(request)?;
    let (mut reply, rule) = s.script.answer_by_rule(&prompt);
    let mut rule = rule.map(str::to_owned);
    let mode = request
        .pointer("/toolConfig/functionCallingConfig/mode")
        .and_then(Value::as_str)
        .unwrap_or("AUTO");
    if mode == "NONE" {
        if let Reply::FunctionCall { .. } = reply {
            reply = Reply::Text(format!("This is a mock Gemini answer to: {}", prompt.user));
            rule = None;
        }
    }
    let reply = structured::shape(&format, reply, rule.as_deref(), &prompt.user)?;
    Ok(Generation {
        model: model.to_owned(),
        reply,
        prompt_tokens: contents
            .iter()
            .map(|c| estimate_tokens(&c.to_string()))
            .sum(),
        response_id: ids::alnum_id("", 22),
    })
}

impl Generation {
    fn output_tokens(&self) -> u64 {
        match &self.reply {
            Reply::Text(t) => estimate_tokens(t),
            Reply::FunctionCall { name, arguments } => {
                estimate_tokens(name) + estimate_tokens(&arguments.to_string())
            }
        }
    }

    fn usage(&self) -> Value {
        let out = self.output_tokens();
        json!({
            "promptTokenCount": self.prompt_tokens, "candidatesTokenCount": out, "totalTokenCount": self.prompt_tokens + out,
            "promptTokensDetails": [{ "modality": "TEXT", "tokenCount": self.prompt_tokens }]
        })
    }

    fn response(&self, parts: Value, finish: bool, usage: bool) -> Value {
        let mut candidate = json!({ "content": { "parts": parts, "role": "model" }, "index": 0 });
        if finish {
            candidate["finishReason"] = Value::from("STOP");
        }
        let mut r = json!({ "candidates": [candidate], "modelVersion": self.model, "responseId": self.response_id });
        if usage {
            r["usageMetadata"] = self.usage();
        }
        r
    }

    fn whole(&self) -> Value {
        let parts = match &self.reply {
            Reply::Text(t) => json!([{ "text": t }]),
            Reply::FunctionCall { name, arguments } => {
                json!([{ "functionCall": { "name": name, "args": arguments } }])
            }
        };
        self.response(parts, true, true)
    }

    /// `alt=sse`: `data: <json>\r\n\r\n` events; else one JSON array.
    fn stream(self, sse: bool) -> Response {
        let mut chunks = Vec::new();
        match &self.reply {
            Reply::Text(t) => {
                let words: Vec<&str> = t.split_inclusive(' ').collect();
                let per = words.len().div_ceil(3).max(1);
                let pieces: Vec<String> = words.chunks(per).map(|c| c.concat()).collect();
                let last = pieces.len() - 1;
                for (i, piece) in pieces.iter().enumerate() {
                    chunks.push(self.response(json!([{ "text": piece }]), i == last, true));
                }
            }
            Reply::FunctionCall { .. } => chunks.push(self.whole()),
        }
        let frames: Vec<Result<Bytes, Infallible>> = if sse {
            chunks
                .iter()
                .map(|c| Ok(Bytes::from(format!("data: {c}\r\n\r\n"))))
                .collect()
        } else {
            let n = chunks.len();
            chunks
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let open = if i == 0 { "[" } else { "" };
                    let close = if i + 1 == n { "]" } else { ",\r\n" };
                    Ok(Bytes::from(format!("{open}{c}{close}")))
                })
                .collect()
        };
        let content_type = if sse {
            "text/event-stream"
        } else {
            "application/json; charset=UTF-8"
        };
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, content_type)],
            Body::from_stream(futures_util::stream::iter(frames)),
        )
            .into_response()
    }
}
