//! The Gemini mock: REST (whole, SSE stream, errors) and Live over ws:// and wss://.

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{json, Value};
use tekup_mocks::{Gemini, TestCa};
use tokio_tungstenite::tungstenite::Message;

async fn generate(gemini: &Gemini, action: &str, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!(
            "{}/v1beta/models/gemini-2.0-flash:{action}",
            gemini.uri()
        ))
        .header("x-goog-api-key", "test-key")
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn generate_content_calls_functions_and_answers_results() {
    let gemini = Gemini::start().await.unwrap();
    let tools = json!([{"functionDeclarations": [{"name": "create_lead", "parameters": {"type": "OBJECT"}}]}]);
    let first: Value = generate(&gemini, "generateContent", json!({
        "contents": [{"role": "user", "parts": [{"text": "Create a lead for John Smith, email john@example.com"}]}],
        "tools": tools
    }))
    .await
    .json()
    .await
    .unwrap();
    let call = &first["candidates"][0]["content"]["parts"][0]["functionCall"];
    assert_eq!(call["name"], "create_lead");
    assert_eq!(
        call["args"],
        json!({"name": "John Smith", "email": "john@example.com"})
    );
    assert_eq!(first["candidates"][0]["finishReason"], "STOP");
    assert!(first["usageMetadata"]["totalTokenCount"].as_u64().unwrap() > 0);
    // snake_case keys are accepted as well.
    let second: Value = generate(&gemini, "generateContent", json!({
        "contents": [
            {"role": "user", "parts": [{"text": "Create a lead for John Smith"}]},
            {"role": "model", "parts": [{"function_call": call}]},
            {"role": "user", "parts": [{"function_response": {"name": "create_lead", "response": {"id": "lead-42"}}}]}
        ],
        "tools": tools
    }))
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        second["candidates"][0]["content"]["parts"][0]["text"],
        "Lead lead-42 created."
    );
}

#[tokio::test]
async fn stream_generate_content_as_sse() {
    let gemini = Gemini::start().await.unwrap();
    let response = reqwest::Client::new()
        .post(format!(
            "{}/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse&key=k",
            gemini.uri()
        ))
        .json(&json!({"contents": [{"parts": [{"text": "tell me something long enough"}]}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let text = response.text().await.unwrap();
    let chunks: Vec<Value> = text
        .split("\r\n\r\n")
        .filter(|c| !c.is_empty())
        .map(|c| serde_json::from_str(c.strip_prefix("data: ").unwrap()).unwrap())
        .collect();
    assert!(chunks.len() > 1);
    let joined: String = chunks
        .iter()
        .map(|c| {
            c["candidates"][0]["content"]["parts"][0]["text"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(
        joined,
        "This is a mock Gemini answer to: tell me something long enough"
    );
    assert_eq!(
        chunks.last().unwrap()["candidates"][0]["finishReason"],
        "STOP"
    );
}

#[tokio::test]
async fn errors_have_the_google_shape() {
    let gemini = Gemini::builder().api_key("good").start().await.unwrap();
    let client = reqwest::Client::new();
    let no_key = client
        .post(format!(
            "{}/v1beta/models/gemini-2.0-flash:generateContent",
            gemini.uri()
        ))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(no_key.status(), 403);
    let body: Value = no_key.json().await.unwrap();
    assert_eq!(body["error"]["status"], "PERMISSION_DENIED");
    let bad_key = client
        .post(format!(
            "{}/v1beta/models/gemini-2.0-flash:generateContent?key=bad",
            gemini.uri()
        ))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_key.status(), 400);
    let body: Value = bad_key.json().await.unwrap();
    assert_eq!(body["error"]["details"][0]["reason"], "API_KEY_INVALID");
    let unknown = client
        .post(format!(
            "{}/v1beta/models/gpt-4:generateContent?key=good",
            gemini.uri()
        ))
        .json(&json!({"contents": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let body: Value = unknown.json().await.unwrap();
    assert_eq!(body["error"]["code"], 404);
    assert_eq!(body["error"]["status"], "NOT_FOUND");
    // A Live-only model does not generateContent: the same list as the Live API's.
    let live_only = client
        .post(format!(
            "{}/v1beta/models/gemini-2.0-flash-live-001:generateContent?key=good",
            gemini.uri()
        ))
        .json(&json!({"contents": [{"parts": [{"text": "hi"}]}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(live_only.status(), 404);
    let body: Value = live_only.json().await.unwrap();
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("models/gemini-2.0-flash-live-001 is not found for API version v1beta, or is not supported for generateContent."));
}

async fn next_json<S>(ws: &mut S) -> Value
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    match ws.next().await.unwrap().unwrap() {
        Message::Binary(b) => serde_json::from_slice(&b).unwrap(),
        Message::Text(t) => serde_json::from_str(&t).unwrap(),
        other => panic!("unexpected frame {other:?}"),
    }
}

/// Runs a tool-call round trip on an open Live session.
async fn tool_round_trip<S>(ws: &mut S)
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>>
        + futures_util::Sink<Message, Error = tokio_tungstenite::tungstenite::Error>
        + Unpin,
{
    ws.send(Message::text(
        json!({"setup": {"model": "models/gemini-2.0-flash-live-001",
        "generation_config": {"response_modalities": ["TEXT"]},
        "tools": [{"function_declarations": [{"name": "get_weather"}]}]}})
        .to_string(),
    ))
    .await
    .unwrap();
    assert_eq!(next_json(ws).await, json!({"setupComplete": {}}));
    ws.send(Message::text(json!({"client_content": {"turns": [{"role": "user", "parts": [{"text": "weather in Oslo?"}]}], "turn_complete": true}}).to_string())).await.unwrap();
    let call = next_json(ws).await;
    let fc = &call["toolCall"]["functionCalls"][0];
    assert_eq!(fc["name"], "get_weather");
    assert_eq!(fc["args"]["city"], "Oslo");
    ws.send(Message::text(json!({"toolResponse": {"functionResponses": [{"id": fc["id"], "name": "get_weather", "response": {"temperature": 4, "city": "Oslo"}}]}}).to_string())).await.unwrap();
    let mut text = String::new();
    loop {
        let m = next_json(ws).await;
        if let Some(t) = m
            .pointer("/serverContent/modelTurn/parts/0/text")
            .and_then(Value::as_str)
        {
            text.push_str(t);
        }
        if m.pointer("/serverContent/turnComplete") == Some(&json!(true)) {
            assert!(m["usageMetadata"]["totalTokenCount"].as_u64().unwrap() > 0);
            break;
        }
    }
    assert_eq!(text, "It is 4 degrees in Oslo.");
}

#[tokio::test]
async fn live_session_over_ws() {
    let gemini = Gemini::start().await.unwrap();
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("{}?key=k", gemini.live_url()))
        .await
        .unwrap();
    tool_round_trip(&mut ws).await;
}

#[tokio::test]
async fn live_session_over_wss_with_the_test_ca() {
    let ca = TestCa::generate().unwrap();
    let gemini = Gemini::builder().tls(&ca).start().await.unwrap();
    assert!(gemini.live_url().starts_with("wss://localhost:"));
    let tcp = tokio::net::TcpStream::connect(gemini.address())
        .await
        .unwrap();
    let connector = tokio_rustls::TlsConnector::from(ca.client_config().unwrap());
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, tcp).await.unwrap();
    let request = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        gemini.live_url(),
    )
    .unwrap();
    let mut request = request;
    request
        .headers_mut()
        .insert("x-goog-api-key", "k".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::client_async(request, tls).await.unwrap();
    tool_round_trip(&mut ws).await;
    // And plain HTTPS for REST with the same CA.
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.ca_pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let models: Value = client
        .get(format!("{}/v1beta/models?key=k", gemini.uri()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(models["models"].as_array().unwrap().len() > 3);
}

#[tokio::test]
async fn live_without_key_is_closed_with_policy_violation() {
    let gemini = Gemini::start().await.unwrap();
    let (mut ws, _) = tokio_tungstenite::connect_async(gemini.live_url())
        .await
        .unwrap();
    match ws.next().await.unwrap().unwrap() {
        Message::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 1008),
        other => panic!("expected a close frame, got {other:?}"),
    }
}

/// Opens a Live session, sends `messages` and returns the close frame's code and reason.
async fn closed_with(gemini: &Gemini, messages: &[&str]) -> (u16, String) {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("{}?key=k", gemini.live_url()))
        .await
        .unwrap();
    for m in messages {
        ws.send(Message::text(*m)).await.unwrap();
    }
    loop {
        match ws.next().await {
            Some(Ok(Message::Close(Some(frame)))) => {
                return (u16::from(frame.code), frame.reason.to_string())
            }
            Some(Ok(Message::Binary(_) | Message::Text(_))) => {}
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn live_refuses_what_it_cannot_use_with_a_reason() {
    let gemini = Gemini::start().await.unwrap();
    let setup = r#"{"setup": {"model": "models/gemini-2.0-flash-live-001"}}"#;
    let cases: &[(&[&str], u16, &str)] = &[
        (
            &[r#"{"realtime_input": {"text": "hi"}}"#],
            1007,
            "The first message of a session must be setup, got realtimeInput.",
        ),
        (
            &[r#"{"setup": {"model": "models/gemini-2.5-pro"}}"#],
            1008,
            "models/gemini-2.5-pro is not found for API version v1beta, or is not supported for bidiGenerateContent.",
        ),
        (
            &[setup, r#"{"realtime_input": {"audio": {"data": "AAAA", "mime_type": "audio/pcm", "rate": 16000}}}"#],
            1007,
            "Invalid JSON payload received. Unknown name \"rate\" at 'realtime_input.audio': Cannot find field.",
        ),
        (
            &[setup, r#"{"realtimeInput": {"audio": {"data": "%%%", "mimeType": "audio/pcm;rate=16000"}}}"#],
            1007,
            "Invalid value at 'realtime_input.audio.data' (TYPE_BYTES), Base64 decoding failed.",
        ),
        (
            &[setup, r#"{"realtimeInput": {"audio": {"data": "AAAA", "mimeType": "audio/wav"}}}"#],
            1007,
            "Unsupported mime type \"audio/wav\" for realtime_input.audio",
        ),
        (&[setup, "[1, 2]"], 1007, "A client message must be a JSON object."),
        (&[setup, "{}"], 1007, "Empty client message"),
        (&[setup, setup], 1007, "Setup may only be sent once"),
    ];
    for (messages, code, reason) in cases {
        let (got_code, got_reason) = closed_with(&gemini, messages).await;
        assert_eq!(got_code, *code, "{messages:?}: {got_reason}");
        assert!(got_reason.contains(reason), "{messages:?}: {got_reason:?}");
        assert!(got_reason.len() <= 123, "a close reason holds 123 bytes");
    }
}

/// 16-bit PCM at 16 kHz, base64 as the standard alphabet writes it.
fn pcm_b64(hz: f64, ms: u32) -> String {
    use base64::Engine as _;
    let n = 16 * ms;
    let bytes: Vec<u8> = (0..n)
        .flat_map(|i| {
            let s = 8000.0 * (std::f64::consts::TAU * hz * f64::from(i) / 16000.0).sin();
            (s as i16).to_le_bytes()
        })
        .collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test]
async fn live_answers_speech_once_and_never_silence() {
    let gemini = Gemini::start().await.unwrap();
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("{}?key=k", gemini.live_url()))
        .await
        .unwrap();
    ws.send(Message::text(
        json!({"setup": {"model": "models/gemini-2.0-flash-live-001",
        "generationConfig": {"responseModalities": ["TEXT"]}, "inputAudioTranscription": {}}})
        .to_string(),
    ))
    .await
    .unwrap();
    assert_eq!(next_json(&mut ws).await, json!({"setupComplete": {}}));
    let audio = |hz: f64, ms: u32| {
        Message::text(json!({"realtimeInput": {"audio": {"data": pcm_b64(hz, ms), "mimeType": "audio/pcm;rate=16000"}}}).to_string())
    };
    for _ in 0..10 {
        ws.send(audio(0.0, 200)).await.unwrap();
    }
    ws.send(audio(500.0, 600)).await.unwrap();
    ws.send(Message::text(
        r#"{"realtimeInput": {"audioStreamEnd": true}}"#,
    ))
    .await
    .unwrap();
    // The first thing back is the transcript of the speech: the 2 s of silence before it made no turn.
    let first = next_json(&mut ws).await;
    assert_eq!(
        first["serverContent"]["inputTranscription"]["text"],
        "Create a lead for John Smith, email john@example.com.",
        "the script's default transcript for a tone it has no entry for"
    );
    let mut text = String::new();
    loop {
        let m = next_json(&mut ws).await;
        if let Some(t) = m
            .pointer("/serverContent/modelTurn/parts/0/text")
            .and_then(Value::as_str)
        {
            text.push_str(t);
        }
        if m.pointer("/serverContent/turnComplete") == Some(&json!(true)) {
            break;
        }
    }
    assert_eq!(
        text,
        "This is a mock Gemini answer to: Create a lead for John Smith, email john@example.com."
    );
    // Silence after the turn: the session waits, it does not answer.
    ws.send(audio(0.0, 2000)).await.unwrap();
    ws.send(Message::text(
        r#"{"realtimeInput": {"audioStreamEnd": true}}"#,
    ))
    .await
    .unwrap();
    let quiet = tokio::time::timeout(std::time::Duration::from_millis(300), ws.next()).await;
    assert!(quiet.is_err(), "silence was answered: {quiet:?}");
}

#[tokio::test]
async fn structured_output_fits_the_schema_whole_and_streamed() {
    let gemini = Gemini::start().await.unwrap();
    let schema = json!({"type": "OBJECT", "properties": {
        "intent": {"type": "STRING", "enum": ["buy", "churn"]},
        "amount": {"type": "NUMBER", "nullable": true, "minimum": 10}},
        "required": ["intent", "amount"], "propertyOrdering": ["intent", "amount"]});
    let body = json!({"contents": [{"parts": [{"text": "classify this call"}]}],
        "generationConfig": {"responseMimeType": "application/json", "responseSchema": schema}});
    let whole: Value = generate(&gemini, "generateContent", body.clone())
        .await
        .json()
        .await
        .unwrap();
    let text = whole["candidates"][0]["content"]["parts"][0]["text"]
        .as_str()
        .unwrap();
    let value: Value = serde_json::from_str(text).unwrap();
    assert!(
        ["buy", "churn"].contains(&value["intent"].as_str().unwrap()),
        "{value}"
    );
    assert!(
        value["amount"].is_null() || value["amount"].as_f64().unwrap() >= 10.0,
        "{value}"
    );
    let streamed: Vec<Value> = generate(&gemini, "streamGenerateContent", body)
        .await
        .json()
        .await
        .unwrap();
    let joined: String = streamed
        .iter()
        .map(|c| {
            c["candidates"][0]["content"]["parts"][0]["text"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(
        joined, text,
        "the same prompt gets the same value, streamed or not"
    );
    // Both kinds of schema at once are refused, as the service refuses them.
    let both = generate(&gemini, "generateContent", json!({"contents": [{"parts": [{"text": "x"}]}],
        "generationConfig": {"responseMimeType": "application/json", "responseSchema": {"type": "STRING"},
            "responseJsonSchema": {"type": "string"}}}))
    .await;
    assert_eq!(both.status(), 400);
}
