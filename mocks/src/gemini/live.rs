//! The Gemini Live API over WebSocket:
//! `/ws/google.ai.generativelanguage.{version}.GenerativeService.BidiGenerateContent`.
//!
//! Protocol (as the google-genai SDK speaks it): the client's first message
//! is `setup` (model, generationConfig.responseModalities, systemInstruction,
//! tools), answered by `setupComplete`. Then:
//! - `clientContent {turns, turnComplete}` appends turns; a complete turn is answered;
//! - `realtimeInput {text}` is answered; `realtimeInput {audio | mediaChunks}` is
//!   buffered until `audioStreamEnd` or `activityEnd`, then transcribed (the
//!   script's transcript) and answered;
//! - `toolResponse {functionResponses: [{id, name, response}]}` answers a tool call.
//!
//! An answer is either `toolCall {functionCalls: [{id, name, args}]}` or
//! `serverContent {modelTurn {parts}}` (text parts, or 24 kHz PCM `inlineData`
//! for the AUDIO modality, with `outputTranscription` when asked), then
//! `serverContent {generationComplete}` and `serverContent {turnComplete}` with
//! `usageMetadata`. Messages are sent as binary frames of JSON, as the real
//! service does. The API key comes as query `key=` or header `x-goog-api-key`;
//! a session without one is closed with 1008, invalid JSON with 1007.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use base64::Engine as _;
use serde_json::{json, Value};

use super::{google_error, normalize, prompt_of, tool_names, GeminiState};
use crate::ids;
use crate::script::{estimate_tokens, Reply};

const CLOSE_POLICY: u16 = 1008;
const CLOSE_INVALID: u16 = 1007;
const CLOSE_AWAY: u16 = 1001;
/// Bytes of 16-bit mono PCM at 24 kHz per answered word (0.1 s).
const PCM_BYTES_PER_WORD: usize = 4800;

pub(super) async fn upgrade(
    State(s): State<Arc<GeminiState>>,
    Path(method): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    ws: WebSocketUpgrade,
) -> Response {
    let Some(rest) = method.strip_prefix("google.ai.generativelanguage.") else {
        return google_error(StatusCode::NOT_FOUND, "Method not found.");
    };
    let Some((version, rpc)) = rest.split_once(".GenerativeService.") else {
        return google_error(StatusCode::NOT_FOUND, "Method not found.");
    };
    if !matches!(version, "v1alpha" | "v1beta" | "v1")
        || !matches!(
            rpc,
            "BidiGenerateContent" | "BidiGenerateContentConstrained"
        )
    {
        return google_error(StatusCode::NOT_FOUND, "Method not found.");
    }
    let auth = if rpc == "BidiGenerateContentConstrained" {
        let token = crate::server::header_str(&headers, "authorization")
            .and_then(|a| a.strip_prefix("Token "))
            .map(str::to_owned)
            .or_else(|| {
                q.as_deref().and_then(|q| {
                    form_urlencoded::parse(q.as_bytes())
                        .find(|(k, _)| k == "access_token")
                        .map(|(_, v)| v.into_owned())
                })
            });
        token
            .filter(|t| !t.is_empty())
            .map(|_| ())
            .ok_or_else(|| "Ephemeral token missing.".to_owned())
    } else {
        s.check_key(&headers, q.as_deref()).map_err(|(_, m)| m)
    };
    ws.on_upgrade(move |socket| async move {
        let mut session = Session {
            state: s,
            socket,
            setup: None,
            history: Vec::new(),
            audio_bytes: 0,
            pending: HashMap::new(),
        };
        session.run(auth).await;
    })
}

struct Session {
    state: Arc<GeminiState>,
    socket: WebSocket,
    setup: Option<Value>,
    history: Vec<Value>,
    audio_bytes: usize,
    pending: HashMap<String, String>,
}

/// Why a session ends early: a close code and reason.
type Close = (u16, String);

impl Session {
    async fn run(&mut self, auth: Result<(), String>) {
        if let Err(reason) = auth {
            self.close(CLOSE_POLICY, &reason).await;
            return;
        }
        loop {
            let state = self.state.clone();
            let message = tokio::select! {
                m = self.socket.recv() => m,
                () = state.stopped() => {
                    self.close(CLOSE_AWAY, "The service is shutting down.").await;
                    return;
                }
            };
            let bytes = match message {
                Some(Ok(Message::Text(t))) => t.as_bytes().to_vec(),
                Some(Ok(Message::Binary(b))) => b.to_vec(),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
            };
            let outcome = match self.handle(&bytes) {
                Ok(replies) => self.send_all(replies).await,
                Err(close) => Err(close),
            };
            if let Err((code, reason)) = outcome {
                self.close(code, &reason).await;
                return;
            }
        }
    }

    async fn send_all(&mut self, replies: Vec<Value>) -> Result<(), Close> {
        for reply in replies {
            let frame = Message::Binary(serde_json::to_vec(&reply).unwrap_or_default().into());
            self.socket
                .send(frame)
                .await
                .map_err(|e| (CLOSE_AWAY, e.to_string()))?;
        }
        Ok(())
    }

    async fn close(&mut self, code: u16, reason: &str) {
        let reason: String = reason.chars().take(120).collect();
        let _ = self
            .socket
            .send(Message::Close(Some(CloseFrame {
                code,
                reason: reason.into(),
            })))
            .await;
    }

    fn handle(&mut self, bytes: &[u8]) -> Result<Vec<Value>, Close> {
        let message = match serde_json::from_slice::<Value>(bytes) {
            Ok(v @ Value::Object(_)) => normalize(v),
            _ => {
                return Err((
                    CLOSE_INVALID,
                    "Request contains an invalid argument.".into(),
                ))
            }
        };
        if let Some(setup) = message.get("setup") {
            if self.setup.is_some() {
                return Err((CLOSE_INVALID, "Setup may only be sent once.".into()));
            }
            if setup
                .get("model")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                return Err((CLOSE_INVALID, "setup.model is required.".into()));
            }
            self.setup = Some(setup.clone());
            return Ok(vec![json!({ "setupComplete": {} })]);
        }
        if self.setup.is_none() {
            return Err((CLOSE_INVALID, "The first message must be setup.".into()));
        }
        if let Some(content) = message.get("clientContent") {
            if let Some(turns) = content.get("turns").and_then(Value::as_array) {
                self.history.extend(turns.iter().cloned());
            }
            return Ok(
                if content
                    .get("turnComplete")
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
                {
                    self.answer(None)
                } else {
                    Vec::new()
                },
            );
        }
        if let Some(input) = message.get("realtimeInput") {
            return Ok(self.realtime(input));
        }
        if let Some(response) = message.get("toolResponse") {
            let parts: Vec<Value> = response
                .get("functionResponses")
                .and_then(Value::as_array)
                .map(|list| {
                    list.iter()
                        .map(|r| {
                            let id = r.get("id").and_then(Value::as_str).unwrap_or_default();
                            let name = r.get("name").and_then(Value::as_str).map(str::to_owned).or_else(|| self.pending.get(id).cloned()).unwrap_or_default();
                            self.pending.remove(id);
                            json!({ "functionResponse": { "id": id, "name": name, "response": r.get("response").cloned().unwrap_or(json!({})) } })
                        })
                        .collect()
                })
                .unwrap_or_default();
            if parts.is_empty() {
                return Err((
                    CLOSE_INVALID,
                    "toolResponse.functionResponses is empty.".into(),
                ));
            }
            self.history.push(json!({ "role": "user", "parts": parts }));
            return Ok(self.answer(None));
        }
        let key = message
            .as_object()
            .and_then(|o| o.keys().next().cloned())
            .unwrap_or_default();
        Err((
            CLOSE_INVALID,
            format!("Invalid JSON payload received. Unknown name \"{key}\"."),
        ))
    }

    fn realtime(&mut self, input: &Value) -> Vec<Value> {
        if let Some(text) = input.get("text").and_then(Value::as_str) {
            self.history
                .push(json!({ "role": "user", "parts": [{ "text": text }] }));
            return self.answer(None);
        }
        let chunks = input.get("audio").into_iter().chain(
            input
                .get("mediaChunks")
                .and_then(Value::as_array)
                .into_iter()
                .flatten(),
        );
        for chunk in chunks {
            if let Some(data) = chunk.get("data").and_then(Value::as_str) {
                self.audio_bytes += base64::engine::general_purpose::STANDARD
                    .decode(data)
                    .map_or(0, |b| b.len());
            }
        }
        let ended = input
            .get("audioStreamEnd")
            .and_then(Value::as_bool)
            .unwrap_or(false)
            || input.get("activityEnd").is_some();
        if ended && self.audio_bytes > 0 {
            self.audio_bytes = 0;
            let transcript = self.state.script.transcript("live");
            self.history
                .push(json!({ "role": "user", "parts": [{ "text": transcript }] }));
            let heard = self.wants("inputAudioTranscription").then_some(transcript);
            return self.answer(heard);
        }
        Vec::new()
    }

    fn wants(&self, key: &str) -> bool {
        self.setup.as_ref().is_some_and(|s| s.get(key).is_some())
    }

    fn answer(&mut self, heard: Option<String>) -> Vec<Value> {
        let setup = self.setup.clone().unwrap_or_default();
        let prompt = prompt_of(
            &self.history,
            setup.get("systemInstruction"),
            tool_names(setup.get("tools")),
        );
        let mut out = Vec::new();
        if let Some(text) = heard {
            out.push(json!({ "serverContent": { "inputTranscription": { "text": text } } }));
        }
        match self.state.script.answer(&prompt) {
            Reply::FunctionCall { name, arguments } => {
                let id = format!("function-call-{}", ids::hex_id("", 16));
                self.pending.insert(id.clone(), name.clone());
                self.history.push(json!({ "role": "model", "parts": [{ "functionCall": { "id": id, "name": name, "args": arguments } }] }));
                out.push(json!({ "toolCall": { "functionCalls": [{ "id": id, "name": name, "args": arguments }] } }));
            }
            Reply::Text(text) => {
                self.history
                    .push(json!({ "role": "model", "parts": [{ "text": text }] }));
                let audio = setup
                    .pointer("/generationConfig/responseModalities")
                    .and_then(Value::as_array)
                    .is_none_or(|m| {
                        m.iter()
                            .any(|x| x.as_str().is_some_and(|x| x.eq_ignore_ascii_case("AUDIO")))
                    });
                if audio {
                    let pcm =
                        vec![0u8; PCM_BYTES_PER_WORD * text.split_whitespace().count().max(1)];
                    let data = base64::engine::general_purpose::STANDARD.encode(pcm);
                    out.push(json!({ "serverContent": { "modelTurn": { "parts": [{ "inlineData": { "mimeType": "audio/pcm;rate=24000", "data": data } }] } } }));
                    if self.wants("outputAudioTranscription") {
                        out.push(
                            json!({ "serverContent": { "outputTranscription": { "text": text } } }),
                        );
                    }
                } else {
                    let words: Vec<&str> = text.split_inclusive(' ').collect();
                    for piece in words.chunks(words.len().div_ceil(2).max(1)) {
                        out.push(json!({ "serverContent": { "modelTurn": { "parts": [{ "text": piece.concat() }] } } }));
                    }
                }
                out.push(json!({ "serverContent": { "generationComplete": true } }));
                let prompt_tokens: u64 = self
                    .history
                    .iter()
                    .map(|c| estimate_tokens(&c.to_string()))
                    .sum();
                let response_tokens = estimate_tokens(&text);
                out.push(json!({
                    "serverContent": { "turnComplete": true },
                    "usageMetadata": { "promptTokenCount": prompt_tokens, "responseTokenCount": response_tokens, "totalTokenCount": prompt_tokens + response_tokens }
                }));
            }
        }
        out
    }
}
