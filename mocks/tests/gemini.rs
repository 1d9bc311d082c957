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
