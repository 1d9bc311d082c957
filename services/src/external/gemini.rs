//! Gemini: `generateContent` with function calling, for voice commands.
//!
//! `POST {base}/v1beta/models/{model}:generateContent` with the API key in
//! `x-goog-api-key` (never in the URL, where it would reach logs). The
//! request carries the conversation as `contents`, an optional
//! `systemInstruction` and the callable functions as
//! `tools: [{functionDeclarations: [...]}]`; the answer is the first
//! `functionCall` of the first candidate, else its text. Errors are Google's
//! `{"error": {"code", "message", "status"}}`. Generating has no side
//! effects, so the POST is retried like a GET.

use serde::Deserialize;
use serde_json::{json, Value};

use super::{error_body, Secret};
use crate::client::{HttpError, ResilientHttp};

pub const DEFAULT_BASE_URL: &str = "https://generativelanguage.googleapis.com";
pub const DEFAULT_MODEL: &str = "gemini-2.0-flash";
const TARGET: &str = "gemini";

/// Why a Gemini call failed.
#[derive(Debug, thiserror::Error)]
pub enum GeminiError {
    #[error("failed to call gemini")]
    Http(#[from] HttpError),
    #[error("gemini answered {code} {status}: {message}")]
    Api {
        code: u16,
        /// Google's canonical status, e.g. `INVALID_ARGUMENT`, `RESOURCE_EXHAUSTED`.
        status: String,
        message: String,
    },
    #[error("failed to decode gemini's answer")]
    Decode(#[source] reqwest::Error),
    #[error("gemini gave no answer ({reason})")]
    NoAnswer { reason: String },
}

/// A function the model may call.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionDeclaration {
    pub name: String,
    pub description: String,
    /// OpenAPI-subset JSON schema of the arguments (`{"type": "object", ...}`).
    pub parameters: Value,
}

/// What the model answered.
#[derive(Debug, Clone, PartialEq)]
pub enum GeminiReply {
    FunctionCall { name: String, args: Value },
    Text(String),
}

/// A request: conversation, instructions and functions.
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct Prompt {
    system: Option<String>,
    contents: Vec<Value>,
    functions: Vec<FunctionDeclaration>,
}

impl Prompt {
    /// A prompt with one user turn.
    pub fn user(text: impl Into<String>) -> Self {
        Self::default().then_user(text)
    }

    /// Adds a user turn.
    pub fn then_user(mut self, text: impl Into<String>) -> Self {
        self.contents
            .push(json!({ "role": "user", "parts": [{ "text": text.into() }] }));
        self
    }

    /// Adds the model's function call and the function's result (the
    /// second step of a function-calling exchange).
    pub fn then_function_result(mut self, name: &str, args: Value, result: Value) -> Self {
        self.contents.push(
            json!({ "role": "model", "parts": [{ "functionCall": { "name": name, "args": args } }] }),
        );
        self.contents.push(json!({
            "role": "user",
            "parts": [{ "functionResponse": { "name": name, "response": result } }],
        }));
        self
    }

    /// The system instruction.
    pub fn system(mut self, text: impl Into<String>) -> Self {
        self.system = Some(text.into());
        self
    }

    /// Lets the model call `function`.
    pub fn function(mut self, function: FunctionDeclaration) -> Self {
        self.functions.push(function);
        self
    }

    fn body(&self) -> Value {
        let mut body = json!({ "contents": self.contents });
        if let Some(system) = &self.system {
            body["systemInstruction"] = json!({ "parts": [{ "text": system }] });
        }
        if !self.functions.is_empty() {
            let declarations: Vec<Value> = self
                .functions
                .iter()
                .map(|f| json!({ "name": f.name, "description": f.description, "parameters": f.parameters }))
                .collect();
            body["tools"] = json!([{ "functionDeclarations": declarations }]);
            body["toolConfig"] = json!({ "functionCallingConfig": { "mode": "AUTO" } });
        }
        body
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Response {
    #[serde(default)]
    candidates: Vec<Candidate>,
    #[serde(default)]
    prompt_feedback: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Candidate {
    #[serde(default)]
    content: Option<Content>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Content {
    #[serde(default)]
    parts: Vec<Value>,
}

/// The Gemini API client of one model.
#[derive(Debug, Clone)]
pub struct GeminiClient {
    http: ResilientHttp,
    base_url: String,
    api_key: Secret,
    model: String,
}

impl GeminiClient {
    pub fn new(http: ResilientHttp, base_url: &str, api_key: String, model: &str) -> Self {
        Self {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            api_key: Secret(api_key),
            model: model.trim_start_matches("models/").to_owned(),
        }
    }

    pub fn model(&self) -> &str {
        &self.model
    }

    /// Asks the model; returns its first function call, else its text.
    ///
    /// # Errors
    /// [`GeminiError`]: transport, an API error, or no usable candidate
    /// (e.g. a blocked prompt).
    pub async fn generate(&self, prompt: &Prompt) -> Result<GeminiReply, GeminiError> {
        let url = format!(
            "{}/v1beta/models/{}:generateContent",
            self.base_url, self.model
        );
        let request = self
            .http
            .client()
            .post(url)
            .header("x-goog-api-key", self.api_key.expose())
            .json(&prompt.body());
        let response = self
            .http
            .send_idempotent(TARGET, "gemini.generateContent", request)
            .await?;
        if !response.status().is_success() {
            let (status, json, text) = error_body(response).await;
            let error = &json["error"];
            return Err(GeminiError::Api {
                code: error["code"]
                    .as_u64()
                    .and_then(|c| u16::try_from(c).ok())
                    .unwrap_or(status.as_u16()),
                status: error["status"].as_str().unwrap_or("UNKNOWN").to_owned(),
                message: error["message"].as_str().map_or(text, str::to_owned),
            });
        }
        let response: Response = response.json().await.map_err(GeminiError::Decode)?;
        reply_of(response)
    }
}

fn reply_of(response: Response) -> Result<GeminiReply, GeminiError> {
    let Some(candidate) = response.candidates.into_iter().next() else {
        let reason = response
            .prompt_feedback
            .as_ref()
            .and_then(|f| f["blockReason"].as_str())
            .map_or_else(
                || "no candidates".to_owned(),
                |r| format!("prompt blocked: {r}"),
            );
        return Err(GeminiError::NoAnswer { reason });
    };
    let parts = candidate.content.map(|c| c.parts).unwrap_or_default();
    if let Some(call) = parts.iter().find_map(|p| p.get("functionCall")) {
        return Ok(GeminiReply::FunctionCall {
            name: call["name"].as_str().unwrap_or_default().to_owned(),
            args: call.get("args").cloned().unwrap_or_else(|| json!({})),
        });
    }
    let text: String = parts.iter().filter_map(|p| p["text"].as_str()).collect();
    if text.is_empty() {
        return Err(GeminiError::NoAnswer {
            reason: format!(
                "finish reason {}",
                candidate.finish_reason.as_deref().unwrap_or("unknown")
            ),
        });
    }
    Ok(GeminiReply::Text(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: Value) -> Result<GeminiReply, GeminiError> {
        reply_of(serde_json::from_value(v).unwrap())
    }

    #[test]
    fn the_request_uses_gemini_field_names() {
        let body = Prompt::user("create a lead")
            .system("You are a CRM assistant.")
            .function(FunctionDeclaration {
                name: "create_lead".into(),
                description: "Creates a lead".into(),
                parameters: json!({ "type": "object", "properties": { "name": { "type": "string" } } }),
            })
            .body();
        assert_eq!(body["contents"][0]["parts"][0]["text"], "create a lead");
        assert_eq!(
            body["systemInstruction"]["parts"][0]["text"],
            "You are a CRM assistant."
        );
        assert_eq!(
            body["tools"][0]["functionDeclarations"][0]["name"],
            "create_lead"
        );
    }

    #[test]
    fn the_first_function_call_wins_over_text() {
        let reply = parse(
            json!({ "candidates": [{ "content": { "role": "model", "parts": [
            { "text": "Sure." },
            { "functionCall": { "name": "create_lead", "args": { "name": "John" } } },
        ] }, "finishReason": "STOP" }] }),
        );
        assert_eq!(
            reply.unwrap(),
            GeminiReply::FunctionCall {
                name: "create_lead".into(),
                args: json!({ "name": "John" })
            }
        );
    }

    #[test]
    fn a_blocked_prompt_is_an_error() {
        let error = parse(json!({ "promptFeedback": { "blockReason": "SAFETY" } })).unwrap_err();
        assert_eq!(
            error.to_string(),
            "gemini gave no answer (prompt blocked: SAFETY)"
        );
    }
}
