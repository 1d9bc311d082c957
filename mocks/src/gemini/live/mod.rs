//! The Gemini Live API over WebSocket:
//! `/ws/google.ai.generativelanguage.{version}.GenerativeService.BidiGenerateContent`.
//!
//! Protocol (as the google-genai SDK speaks it): the client's first message
//! is `setup` (model, generationConfig.responseModalities, systemInstruction,
//! tools, realtimeInputConfig, input/outputAudioTranscription), answered by
//! `setupComplete`. Then:
//! - `clientContent {turns, turnComplete}` appends turns; a complete turn is answered;
//! - `realtimeInput {text}` is answered; `realtimeInput {audio | mediaChunks}`
//!   is listened to (voice activity by energy, see the `audio` module): an
//!   utterance ends after trailing silence or at `audioStreamEnd` (or, with
//!   automatic activity detection disabled, at `activityEnd`), is
//!   transcribed by the script (`transcripts.by-tone`, else the default),
//!   sent back as `serverContent {inputTranscription}` when
//!   `inputAudioTranscription` is configured, and answered. Silence is never
//!   answered: the session waits, as the real one does;
//! - `toolResponse {functionResponses: [{id, name, response}]}` answers a tool call;
//! - `contextUpdate {systemInstruction, tools}` changes them for later turns.
//!
//! An answer is either `toolCall {functionCalls: [{id, name, args}]}` or
//! `serverContent {modelTurn {parts}}` (text parts, or 24 kHz PCM `inlineData`
//! for the AUDIO modality, with `outputTranscription` when asked), then
//! `serverContent {generationComplete}` and `serverContent {turnComplete}` with
//! `usageMetadata`. Messages are sent as binary frames of JSON, as the real
//! service does.
//!
//! A session never goes silent on something it cannot use: like the real
//! service it closes the socket, with 1008 (policy violation) for a missing
//! key and for a model that is unknown or does not support
//! `bidiGenerateContent` (the REST sentence `models/X is not found for API
//! version v1beta, or is not supported for bidiGenerateContent. ...`, from
//! the model list REST uses), and with 1007 (invalid payload) and a reason
//! naming the problem for malformed JSON, an unknown message kind or field, a
//! message before `setup`, audio it cannot read (a mime type other than
//! `audio/pcm`, bad base64) and activity signals while automatic activity
//! detection is on. Reasons are cut at the 123 bytes a close frame holds, as
//! the real service cuts them. The SDK raises them as `APIError` with the
//! close code.

mod audio;
mod names;

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use base64::Engine as _;
use serde_json::{json, Value};

use self::audio::{Media, Utterance, Vad, VadConfig};
use self::names::{activity_refused, check_names};
use super::{google_error, models, normalize, prompt_of, tool_names, GeminiState};
use crate::ids;
use crate::script::{estimate_tokens, Reply};
use crate::server::not_mocked_message;

const CLOSE_POLICY: u16 = 1008;
const CLOSE_INVALID: u16 = 1007;
const CLOSE_AWAY: u16 = 1001;
/// Longest close reason: a control frame holds 125 bytes, two are the code.
const REASON_MAX: usize = 123;
/// Model audio is sent in chunks of at most this many bytes (0.5 s).
const AUDIO_CHUNK: usize = audio::OUTPUT_RATE as usize;

pub(super) async fn upgrade(
    State(s): State<Arc<GeminiState>>,
    Path(method): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    ws: WebSocketUpgrade,
) -> Response {
    let not_mocked = || {
        let path = format!("/ws/{method}");
        google_error(
            StatusCode::NOT_FOUND,
            &not_mocked_message("gemini", &Method::GET, &path),
        )
    };
    let Some(rest) = method.strip_prefix("google.ai.generativelanguage.") else {
        return not_mocked();
    };
    let Some((version, rpc)) = rest.split_once(".GenerativeService.") else {
        return not_mocked();
    };
    if !matches!(version, "v1alpha" | "v1beta" | "v1")
        || !matches!(
            rpc,
            "BidiGenerateContent" | "BidiGenerateContentConstrained"
        )
    {
        return not_mocked();
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
    let version = version.to_owned();
    ws.on_upgrade(move |socket| async move {
        let mut session = Session {
            state: s,
            socket,
            version,
            setup: None,
            history: Vec::new(),
            pending: HashMap::new(),
            vad: Vad::new(VadConfig::from_setup(&Value::Null)),
            in_activity: false,
        };
        session.run(auth).await;
    })
}

struct Session {
    state: Arc<GeminiState>,
    socket: WebSocket,
    version: String,
    setup: Option<Value>,
    history: Vec<Value>,
    pending: HashMap<String, String>,
    vad: Vad,
    /// Between `activityStart` and `activityEnd` (manual activity detection).
    in_activity: bool,
}

/// Why a session ends early: a close code and reason.
type Close = (u16, String);

fn invalid(reason: impl Into<String>) -> Close {
    (CLOSE_INVALID, reason.into())
}

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
        let mut end = reason.len().min(REASON_MAX);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        let _ = self
            .socket
            .send(Message::Close(Some(CloseFrame {
                code,
                reason: reason[..end].into(),
            })))
            .await;
    }

    fn handle(&mut self, bytes: &[u8]) -> Result<Vec<Value>, Close> {
        let message = match serde_json::from_slice::<Value>(bytes) {
            Ok(v @ Value::Object(_)) => {
                check_names(&v)?;
                normalize(v)
            }
            Ok(_) => {
                return Err(invalid(
                    "Invalid JSON payload received. A client message must be a JSON object.",
                ))
            }
            Err(e) => return Err(invalid(format!("Invalid JSON payload received. {e}."))),
        };
        let kinds: Vec<&String> = message
            .as_object()
            .map(|o| o.keys().collect())
            .unwrap_or_default();
        let kind = match kinds.as_slice() {
            [one] => one.as_str(),
            [] => return Err(invalid("Empty client message: set one of setup, clientContent, realtimeInput, toolResponse.")),
            [a, b, ..] => return Err(invalid(format!("A client message holds one of setup, clientContent, realtimeInput, toolResponse; got {a} and {b}."))),
        };
        let body = &message[kind];
        if kind == "setup" {
            return self.setup(body);
        }
        if self.setup.is_none() {
            return Err(invalid(format!(
                "The first message of a session must be setup, got {kind}."
            )));
        }
        match kind {
            "clientContent" => {
                if let Some(turns) = body.get("turns").and_then(Value::as_array) {
                    self.history.extend(turns.iter().cloned());
                }
                let complete = body.get("turnComplete").and_then(Value::as_bool) == Some(true);
                Ok(if complete {
                    self.answer(None)
                } else {
                    Vec::new()
                })
            }
            "realtimeInput" => self.realtime(body),
            "toolResponse" => self.tool_response(body),
            _ => {
                let setup = self.setup.get_or_insert_with(|| json!({}));
                if let Some(system) = body.get("systemInstruction") {
                    setup["systemInstruction"] = system.clone();
                }
                if let Some(tools) = body.get("tools") {
                    setup["tools"] = tools.get("tools").unwrap_or(tools).clone();
                }
                Ok(Vec::new())
            }
        }
    }

    fn setup(&mut self, setup: &Value) -> Result<Vec<Value>, Close> {
        if self.setup.is_some() {
            return Err(invalid(
                "Setup may only be sent once, as the first message.",
            ));
        }
        let model = setup
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if model.is_empty() {
            return Err(invalid("setup.model is required."));
        }
        models::check(model, "bidiGenerateContent", &self.version)
            .map_err(|reason| (CLOSE_POLICY, reason))?;
        self.vad = Vad::new(VadConfig::from_setup(setup));
        self.setup = Some(setup.clone());
        Ok(vec![json!({ "setupComplete": {} })])
    }

    fn tool_response(&mut self, response: &Value) -> Result<Vec<Value>, Close> {
        let mut parts = Vec::new();
        for r in response
            .get("functionResponses")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let id = r.get("id").and_then(Value::as_str).unwrap_or_default();
            let name = r
                .get("name")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .or_else(|| self.pending.get(id).cloned())
                .unwrap_or_default();
            self.pending.remove(id);
            let result = r.get("response").cloned().unwrap_or(json!({}));
            parts.push(
                json!({ "functionResponse": { "id": id, "name": name, "response": result } }),
            );
        }
        if parts.is_empty() {
            return Err(invalid("toolResponse.functionResponses is empty."));
        }
        self.history.push(json!({ "role": "user", "parts": parts }));
        Ok(self.answer(None))
    }

    fn realtime(&mut self, input: &Value) -> Result<Vec<Value>, Close> {
        let automatic =
            VadConfig::from_setup(self.setup.as_ref().unwrap_or(&Value::Null)).automatic;
        let mut heard = Vec::new();
        if input.get("activityStart").is_some() {
            if automatic {
                return Err(invalid(activity_refused("activity_start")));
            }
            self.vad.clear();
            self.in_activity = true;
        }
        let chunks = input
            .get("mediaChunks")
            .and_then(Value::as_array)
            .into_iter()
            .flatten();
        for chunk in chunks {
            heard.extend(self.listen(chunk, "mediaChunks", automatic)?);
        }
        for field in ["audio", "video"] {
            if let Some(blob) = input.get(field) {
                heard.extend(self.listen(blob, field, automatic)?);
            }
        }
        let mut out = Vec::new();
        for utterance in heard {
            out.extend(self.utterance(&utterance));
        }
        if let Some(text) = input.get("text").and_then(Value::as_str) {
            self.history
                .push(json!({ "role": "user", "parts": [{ "text": text }] }));
            out.extend(self.answer(None));
        }
        if input.get("activityEnd").is_some() {
            if automatic {
                return Err(invalid(activity_refused("activity_end")));
            }
            self.in_activity = false;
            if let Some(u) = self.vad.finish() {
                out.extend(self.utterance(&u));
            }
        }
        if input.get("audioStreamEnd").and_then(Value::as_bool) == Some(true) && automatic {
            if let Some(u) = self.vad.finish() {
                out.extend(self.utterance(&u));
            }
        }
        Ok(out)
    }

    /// Decodes one blob and feeds its audio to voice activity detection.
    fn listen(
        &mut self,
        blob: &Value,
        field: &str,
        automatic: bool,
    ) -> Result<Vec<Utterance>, Close> {
        let at = match field {
            "mediaChunks" => "realtime_input.media_chunks".to_owned(),
            other => format!("realtime_input.{other}"),
        };
        let mime = blob
            .get("mimeType")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if mime.is_empty() {
            return Err(invalid(format!("{at}.mime_type is required.")));
        }
        let kind = audio::media(mime, field).map_err(invalid)?;
        let data = blob.get("data").and_then(Value::as_str).unwrap_or_default();
        let bytes = audio::decode_base64(data).ok_or_else(|| {
            invalid(format!(
                "Invalid value at '{at}.data' (TYPE_BYTES), Base64 decoding failed."
            ))
        })?;
        match kind {
            Media::Pcm(rate) if automatic || self.in_activity => Ok(self.vad.push(&bytes, rate)),
            Media::Pcm(_) | Media::Visual => Ok(Vec::new()),
        }
    }

    /// The turn for something the user said: transcript into the history,
    /// `inputTranscription` when configured, then the model's answer.
    fn utterance(&mut self, utterance: &Utterance) -> Vec<Value> {
        let transcript = self.state.script.transcript_of_tone(utterance.tone_hz);
        tracing::debug!(?utterance, %transcript, "live: utterance heard");
        self.history
            .push(json!({ "role": "user", "parts": [{ "text": transcript }] }));
        let heard = self.wants("inputAudioTranscription").then_some(transcript);
        self.answer(heard)
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
        let text = match self.state.script.answer(&prompt) {
            Reply::FunctionCall { name, arguments } => {
                let id = format!("function-call-{}", ids::hex_id("", 16));
                self.pending.insert(id.clone(), name.clone());
                self.history.push(json!({ "role": "model", "parts": [{ "functionCall": { "id": id, "name": name, "args": arguments } }] }));
                out.push(json!({ "toolCall": { "functionCalls": [{ "id": id, "name": name, "args": arguments }] } }));
                return out;
            }
            Reply::Text(text) => text,
        };
        self.history
            .push(json!({ "role": "model", "parts": [{ "text": text }] }));
        let speaks = setup
            .pointer("/generationConfig/responseModalities")
            .and_then(Value::as_array)
            .is_none_or(|m| {
                m.iter()
                    .any(|x| x.as_str().is_some_and(|x| x.eq_ignore_ascii_case("AUDIO")))
            });
        if speaks {
            for chunk in audio::speech_for(&text).chunks(AUDIO_CHUNK) {
                let data = base64::engine::general_purpose::STANDARD.encode(chunk);
                out.push(json!({ "serverContent": { "modelTurn": { "parts": [{ "inlineData": { "mimeType": "audio/pcm;rate=24000", "data": data } }] } } }));
            }
            if self.wants("outputAudioTranscription") {
                out.push(json!({ "serverContent": { "outputTranscription": { "text": text } } }));
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
        out
    }
}
