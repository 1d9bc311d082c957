//! The OpenAI mock and the shared layer (journal, faults, expectations, admin API).

use std::time::Duration;

use serde_json::{json, Value};
use tekup_mocks::matchers::{body_partial_json, method, path};
use tekup_mocks::{Expectation, Fault, OpenAi};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn chat(mock: &OpenAi, body: Value) -> reqwest::Response {
    post(mock, "chat/completions", body).await
}

#[tokio::test]
async fn chat_completion_has_the_wire_format_and_headers() {
    let mock = OpenAi::start().await.unwrap();
    let response = chat(
        &mock,
        json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hello there"}]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .starts_with("req_"));
    assert_eq!(response.headers()["x-ratelimit-limit-requests"], "10000");
    assert_eq!(response.headers()["x-ratelimit-remaining-requests"], "9999");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "This is a mock answer to: hello there"
    );
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert!(body["usage"]["total_tokens"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn tool_call_round_trip_follows_the_script() {
    let mock = OpenAi::start().await.unwrap();
    let tools = json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]);
    let first: Value = chat(
        &mock,
        json!({"model": "gpt-4o", "tools": tools,
        "messages": [{"role": "user", "content": "What is the weather in Paris?"}]}),
    )
    .await
    .json()
    .await
    .unwrap();
    let call = &first["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(first["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args["city"], "Paris");
    let second: Value = chat(&mock, json!({"model": "gpt-4o", "tools": tools, "messages": [
        {"role": "user", "content": "What is the weather in Paris?"},
        first["choices"][0]["message"].clone(),
        {"role": "tool", "tool_call_id": call["id"], "content": "{\"temperature\": 18, \"city\": \"Paris\"}"}
    ]}))
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        second["choices"][0]["message"]["content"],
        "It is 18 degrees in Paris."
    );
}

#[tokio::test]
async fn stream_ends_with_done_and_reassembles() {
    let mock = OpenAi::start().await.unwrap();
    let response = chat(
        &mock,
        json!({"model": "gpt-4o", "stream": true, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "stream me"}]}),
    )
    .await;
    assert_eq!(
        response.headers()["content-type"],
        "text/event-stream; charset=utf-8"
    );
    let text = response.text().await.unwrap();
    let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
    assert_eq!(*events.last().unwrap(), "data: [DONE]");
    let mut content = String::new();
    for event in &events[..events.len() - 1] {
        let chunk: Value = serde_json::from_str(event.strip_prefix("data: ").unwrap()).unwrap();
        assert_eq!(chunk["object"], "chat.completion.chunk");
        if let Some(piece) = chunk["choices"][0]["delta"]["content"].as_str() {
            content.push_str(piece);
        }
    }
    assert_eq!(content, "This is a mock answer to: stream me");
    let usage: Value =
        serde_json::from_str(events[events.len() - 2].strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert!(usage["usage"]["total_tokens"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn errors_have_the_openai_shape() {
    let mock = OpenAi::builder()
        .api_key("sk-right-key-123")
        .start()
        .await
        .unwrap();
    let response = client()
        .post(format!("{}/chat/completions", mock.base_url()))
        .bearer_auth("sk-wrong-key-456")
        .json(&json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_api_key");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("sk-***-456"));
    let response = client()
        .post(format!("{}/chat/completions", mock.base_url()))
        .bearer_auth("sk-right-key-123")
        .json(&json!({"model": "gpt-4o"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({"error": {"message": "Missing required parameter: 'messages'.",
        "type": "invalid_request_error", "param": "messages", "code": "missing_required_parameter"}})
    );
}

#[tokio::test]
async fn requests_per_minute_limit_answers_429() {
    let mock = OpenAi::builder()
        .requests_per_minute(2)
        .start()
        .await
        .unwrap();
    let body = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]});
    assert_eq!(chat(&mock, body.clone()).await.status(), 200);
    assert_eq!(chat(&mock, body.clone()).await.status(), 200);
    let limited = chat(&mock, body).await;
    assert_eq!(limited.status(), 429);
    assert!(
        limited.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            <= 60
    );
    let body: Value = limited.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
}

#[tokio::test]
async fn embeddings_float_and_base64_agree() {
    let mock = OpenAi::start().await.unwrap();
    let get = |format: &'static str| {
        let url = format!("{}/embeddings", mock.base_url());
        async move {
            client()
                .post(url)
                .bearer_auth("sk-test")
                .json(&json!({"model": "text-embedding-3-small", "input": ["a", "b"], "encoding_format": format, "dimensions": 8}))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let float = get("float").await;
    let b64 = get("base64").await;
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64["data"][1]["embedding"].as_str().unwrap())
        .unwrap();
    let decoded: Vec<f32> = bytes
        .chunks(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    #[expect(clippy::cast_possible_truncation, reason = "the API sends f32 values")]
    let floats: Vec<f32> = float["data"][1]["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    assert_eq!(decoded.len(), 8);
    assert_eq!(decoded, floats);
}

#[tokio::test]
async fn transcription_reads_multipart() {
    let mock = OpenAi::start().await.unwrap();
    let form = reqwest::multipart::Form::new()
        .text("model", "whisper-1")
        .part(
            "file",
            reqwest::multipart::Part::bytes(vec![1u8; 64]).file_name("meeting.wav"),
        );
    let body: Value = client()
        .post(format!("{}/audio/transcriptions", mock.base_url()))
        .bearer_auth("sk-test")
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        body["text"],
        "Schedule a meeting with Acme tomorrow at ten."
    );
}

#[tokio::test]
async fn faults_status_times_then_recovers_and_journal_counts() {
    let mock = OpenAi::start().await.unwrap();
    mock.inject(Fault::status(503).on_path("/v1/chat").times(2));
    let body = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]});
    let first = chat(&mock, body.clone()).await;
    assert_eq!(first.status(), 503);
    let err: Value = first.json().await.unwrap();
    assert_eq!(err["error"]["type"], "server_error");
    assert_eq!(chat(&mock, body.clone()).await.status(), 503);
    assert_eq!(chat(&mock, body).await.status(), 200);
    let statuses: Vec<_> = mock
        .journal()
        .iter()
        .map(|r| (r.status, r.fault.clone()))
        .collect();
    assert_eq!(
        statuses,
        vec![
            (Some(503), Some("status".into())),
            (Some(503), Some("status".into())),
            (Some(200), None)
        ]
    );
    mock.expect(
        Expectation::given(method("POST"))
            .and(path("/v1/chat/completions"))
            .times(3),
    );
    mock.verify().unwrap();
    mock.expect(
        Expectation::given(body_partial_json(json!({"model": "gpt-5"}))).named("gpt-5 call"),
    );
    let err = mock.verify().unwrap_err().to_string();
    assert!(
        err.contains("`gpt-5 call`: expected at least 1 matching call(s), received 0"),
        "{err}"
    ); // The failure was the point; without this the drop would report it again.
    mock.reset();
}

#[tokio::test]
async fn reset_truncated_malformed_and_stall_faults() {
    let mock = OpenAi::start().await.unwrap();
    let body = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]});

    mock.inject(Fault::reset().times(1));
    let err = client()
        .post(format!("{}/chat/completions", mock.base_url()))
        .bearer_auth("k")
        .json(&body)
        .send()
        .await
        .unwrap_err();
    assert!(err.is_request() || err.is_connect(), "{err:?}");

    mock.inject(Fault::truncated().times(1));
    let response = chat(&mock, body.clone()).await;
    assert_eq!(response.status(), 200);
    assert!(
        response.bytes().await.is_err(),
        "a truncated body must fail to read"
    );

    mock.inject(Fault::malformed().times(1));
    let response = chat(&mock, body.clone()).await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");

    mock.inject(Fault::stall(None).times(1));
    let stalled = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap()
        .post(format!("{}/chat/completions", mock.base_url()))
        .bearer_auth("k")
        .json(&body)
        .send()
        .await
        .unwrap_err();
    assert!(stalled.is_timeout());

    mock.inject(Fault::rate_limit(Duration::from_millis(1500)).times(1));
    let limited = chat(&mock, body.clone()).await;
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "2");
    assert_eq!(chat(&mock, body).await.status(), 200);
    let faults: Vec<_> = mock
        .journal()
        .iter()
        .map(|r| r.fault.clone().unwrap_or_default())
        .collect();
    assert_eq!(
        faults,
        ["reset", "truncated", "malformed", "stall", "rate-limit", ""]
    );
}

#[tokio::test]
async fn latency_fault_delays_the_answer() {
    let mock = OpenAi::start().await.unwrap();
    mock.inject(Fault::latency(Duration::from_millis(300)).on_method("GET"));
    let started = std::time::Instant::now();
    let response = client()
        .get(format!("{}/models", mock.base_url()))
        .bearer_auth("k")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn admin_api_drives_faults_expectations_and_reset() {
    let mock = OpenAi::start().await.unwrap();
    let admin = |p: &str| format!("{}/__admin/{p}", mock.uri());
    let c = client();
    let created = c
        .post(admin("faults"))
        .json(&json!({"kind": "status", "status": 500, "times": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let bad = c
        .post(admin("faults"))
        .json(&json!({"kind": "explode"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert!(bad
        .text()
        .await
        .unwrap()
        .contains("unknown fault kind `explode`"));
    let body = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]});
    assert_eq!(chat(&mock, body.clone()).await.status(), 500);
    assert_eq!(chat(&mock, body).await.status(), 200);
    c.post(admin("expectations"))
        .json(&json!({"method": "POST", "path": "/v1/chat/completions", "body-json": {"model": "gpt-4o"}, "times": 2}))
        .send()
        .await
        .unwrap();
    let verify = c.get(admin("verify")).send().await.unwrap();
    assert_eq!(verify.status(), 200);
    c.post(admin("expectations"))
        .json(&json!({"path": "/v1/embeddings"}))
        .send()
        .await
        .unwrap();
    let verify = c.get(admin("verify")).send().await.unwrap();
    assert_eq!(verify.status(), 417);
    let report: Value = verify.json().await.unwrap();
    assert_eq!(
        report["failures"][0],
        "`/v1/embeddings`: expected at least 1 matching call(s), received 0"
    );
    let journal: Vec<Value> = c
        .get(admin("journal?path=/v1/chat"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(journal.len(), 2);
    assert_eq!(journal[0]["status"], 500);
    assert_eq!(c.post(admin("reset")).send().await.unwrap().status(), 204);
    let journal: Vec<Value> = c
        .get(admin("journal"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        journal.is_empty(),
        "admin calls are not journaled and reset clears: {journal:?}"
    );
    assert_eq!(c.get(admin("verify")).send().await.unwrap().status(), 200);
}

async fn post(mock: &OpenAi, route: &str, body: Value) -> reqwest::Response {
    client()
        .post(format!("{}/{route}", mock.base_url()))
        .bearer_auth("sk-test")
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn responses_stream_frames_name_their_event_and_end_without_done() {
    let mock = OpenAi::start().await.unwrap();
    let response = post(
        &mock,
        "responses",
        json!({"model": "gpt-4o", "input": "stream me", "stream": true}),
    )
    .await;
    assert_eq!(
        response.headers()["content-type"],
        "text/event-stream; charset=utf-8"
    );
    let text = response.text().await.unwrap();
    let frames: Vec<&str> = text.split("\n\n").filter(|f| !f.is_empty()).collect();
    for (n, frame) in frames.iter().enumerate() {
        let (event, data) = frame.split_once('\n').unwrap();
        let data: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
        assert_eq!(
            event.strip_prefix("event: "),
            data["type"].as_str(),
            "{frame}"
        );
        assert_eq!(data["sequence_number"], n, "{frame}");
    }
    let last: Value =
        serde_json::from_str(frames.last().unwrap().split_once("data: ").unwrap().1).unwrap();
    assert_eq!(last["type"], "response.completed");
    assert_eq!(
        last["response"]["output"][0]["content"][0]["text"],
        "This is a mock answer to: stream me"
    );
    let id = last["response"]["id"].as_str().unwrap();
    let stored: Value = client()
        .get(format!("{}/responses/{id}", mock.base_url()))
        .bearer_auth("sk-test")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        stored, last["response"],
        "GET returns what the stream completed with"
    );
    mock.reset();
    let gone = client()
        .get(format!("{}/responses/{id}", mock.base_url()))
        .bearer_auth("sk-test")
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404, "reset forgets stored responses");
}

#[tokio::test]
async fn chat_token_limits_cut_the_answer_and_reasoning_models_refuse_max_tokens() {
    let mock = OpenAi::start().await.unwrap();
    let body: Value = chat(
        &mock,
        json!({"model": "gpt-4o", "max_completion_tokens": 3,
               "messages": [{"role": "user", "content": "a long question about leads"}]}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(body["choices"][0]["finish_reason"], "length");
    assert_eq!(body["choices"][0]["message"]["content"], "This is a mo");
    assert_eq!(body["usage"]["completion_tokens"], 3);
    let tools = json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]);
    let cut_call: Value = chat(
        &mock,
        json!({"model": "gpt-4o", "max_tokens": 4, "tools": tools,
               "messages": [{"role": "user", "content": "weather in Paris"}]}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(cut_call["choices"][0]["finish_reason"], "length");
    let arguments = cut_call["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
        .as_str()
        .unwrap();
    assert!(
        serde_json::from_str::<Value>(arguments).is_err(),
        "cut arguments are incomplete JSON, as the API sends them: {arguments}"
    );
    let refused = chat(
        &mock,
        json!({"model": "o4-mini", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    assert_eq!(refused.status(), 400);
    assert_eq!(
        refused.json::<Value>().await.unwrap(),
        json!({"error": {
            "message": "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.",
            "type": "invalid_request_error", "param": "max_tokens", "code": "unsupported_parameter"}})
    );
}

#[tokio::test]
async fn an_unknown_model_is_refused_on_every_endpoint() {
    let mock = OpenAi::start().await.unwrap();
    let expected = json!({"error": {
        "message": "The model `gpt-9` does not exist or you do not have access to it.",
        "type": "invalid_request_error", "param": null, "code": "model_not_found"}});
    let calls = [
        post(
            &mock,
            "chat/completions",
            json!({"model": "gpt-9", "messages": [{"role": "user", "content": "x"}]}),
        )
        .await,
        post(&mock, "responses", json!({"model": "gpt-9", "input": "x"})).await,
        post(&mock, "embeddings", json!({"model": "gpt-9", "input": "x"})).await,
        client()
            .post(format!("{}/audio/transcriptions", mock.base_url()))
            .bearer_auth("sk-test")
            .multipart(reqwest::multipart::Form::new().text("model", "gpt-9").part(
                "file",
                reqwest::multipart::Part::bytes(vec![1u8; 16]).file_name("a.wav"),
            ))
            .send()
            .await
            .unwrap(),
        client()
            .get(format!("{}/models/gpt-9", mock.base_url()))
            .bearer_auth("sk-test")
            .send()
            .await
            .unwrap(),
    ];
    for response in calls {
        let route = response.url().path().to_owned();
        assert_eq!(response.status(), 404, "{route}");
        assert_eq!(response.json::<Value>().await.unwrap(), expected, "{route}");
    }
}

#[tokio::test]
async fn structured_replies_fit_the_schema_or_name_the_rule_that_does_not() {
    let script = tekup_mocks::Script::parse(
        r#"
rules:
  - name: order
    when: { prompt-matches: "order (?P<sku>\\w+)" }
    reply: { json: { sku: "{{sku}}", quantity: 2, note: null } }
"#,
        std::path::Path::new("orders.yaml"),
    )
    .unwrap();
    let mock = OpenAi::builder().script(script).start().await.unwrap();
    let schema = json!({"type": "object", "additionalProperties": false,
        "required": ["sku", "quantity", "note"],
        "properties": {"sku": {"type": "string"}, "quantity": {"type": "integer", "minimum": 1},
                       "note": {"anyOf": [{"type": "string"}, {"type": "null"}]}}});
    let format = json!({"type": "json_schema", "json_schema": {"name": "order", "strict": true, "schema": schema}});
    let ask = |prompt: &str| {
        json!({"model": "gpt-4o", "response_format": format,
        "messages": [{"role": "user", "content": prompt}]})
    };
    let scripted: Value = chat(&mock, ask("order AB12")).await.json().await.unwrap();
    let content = scripted["choices"][0]["message"]["content"]
        .as_str()
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(content).unwrap(),
        json!({"sku": "AB12", "quantity": 2, "note": null})
    );
    let built: Value = chat(&mock, ask("something else"))
        .await
        .json()
        .await
        .unwrap();
    let built: Value =
        serde_json::from_str(built["choices"][0]["message"]["content"].as_str().unwrap()).unwrap();
    assert!(
        built["sku"].is_string() && built["quantity"].as_i64().unwrap() >= 1,
        "{built}"
    );

    let mut narrow = format.clone();
    narrow["json_schema"]["schema"]["properties"]["quantity"]["minimum"] = json!(5);
    let refused = chat(
        &mock,
        json!({"model": "gpt-4o", "response_format": narrow,
               "messages": [{"role": "user", "content": "order AB12"}]}),
    )
    .await;
    assert_eq!(refused.status(), 500);
    assert_eq!(refused.headers()["x-should-retry"], "false");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "mock_script_mismatch");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(
            "script rule `order` replies with JSON that does not fit the response schema 'order'"
        ) && message.contains("$.quantity"),
        "{message}"
    );
}

#[tokio::test]
async fn an_unserved_endpoint_keeps_openais_invalid_url_wording() {
    let mock = OpenAi::start().await.unwrap();
    let response = post(&mock, "batches", json!({"input_file_id": "file-1"})).await;
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "Invalid URL (POST /v1/batches); POST /v1/batches is not mocked by tekup-mocks"
        ),
        "{message}"
    );
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert_eq!(body["error"]["code"], Value::Null);
}
