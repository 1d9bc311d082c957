//! What every mock does alike: unmet expectations reported when a handle is
//! dropped, and endpoints it does not serve answered in the API's own error
//! shape, naming the call as not mocked.

use serde_json::Value;
use tekup_mocks::matchers::{method, path};
use tekup_mocks::{Expectation, Gemini, Graph, MockServer, OpenAi, Stripe};

async fn all() -> Vec<MockServer> {
    vec![
        OpenAi::start().await.unwrap().into_server(),
        Gemini::start().await.unwrap().into_server(),
        Graph::builder()
            .accept_any_token()
            .start()
            .await
            .unwrap()
            .into_server(),
        Stripe::start().await.unwrap().into_server(),
    ]
}

#[tokio::test]
#[should_panic(
    expected = "the openai mock was dropped with unmet expectations (call verify() to check them where it suits the test): mock expectations were not met:\n- `one embedding`: expected exactly 1 matching call(s), received 0"
)]
async fn an_unmet_expectation_panics_when_the_mock_is_dropped() {
    let mock = OpenAi::start().await.unwrap();
    mock.expect(
        Expectation::given(path("/v1/embeddings"))
            .named("one embedding")
            .times(1),
    );
    // No verify(): the drop at the end of the test is the check.
}

#[tokio::test]
async fn met_expectations_and_reset_ones_drop_quietly() {
    let mock = OpenAi::start().await.unwrap();
    mock.expect(Expectation::given(method("GET")).and(path("/v1/models")));
    let status = reqwest::Client::new()
        .get(format!("{}/models", mock.base_url()))
        .bearer_auth("sk-test")
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
    drop(mock);

    let mock = Stripe::start().await.unwrap();
    mock.expect(Expectation::given(path("/v1/customers")).named("never sent"));
    assert!(mock.verify().is_err());
    // A test that wanted the failure clears it; the drop has nothing left to report.
    mock.reset();
}

#[tokio::test]
#[should_panic(expected = "the code under test failed first")]
async fn no_second_panic_while_a_test_is_already_failing() {
    // A panic inside Drop while unwinding would abort the whole test binary,
    // hiding the real failure; the check stands aside.
    let mock = Gemini::start().await.unwrap();
    mock.expect(Expectation::given(path("/never")));
    panic!("the code under test failed first");
}

#[tokio::test]
#[should_panic(expected = "the stripe mock was dropped with unmet expectations")]
async fn shutdown_checks_too() {
    let mock = Stripe::start().await.unwrap();
    mock.expect(Expectation::given(path("/v1/refunds")));
    mock.into_server().shutdown().await;
}

/// The body of each mock's answer to `GET <path>`, which no mock serves.
async fn not_mocked(mock: &MockServer, method: reqwest::Method, path: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .request(method, format!("{}{path}", mock.uri()))
        .bearer_auth("sk_test_123")
        .header("x-goog-api-key", "test-key")
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or_else(|e| {
        panic!(
            "the {} mock answered {path} without a JSON body: {e}",
            mock.name()
        )
    });
    (status, body)
}

#[tokio::test]
async fn an_unserved_endpoint_is_named_as_not_mocked_in_each_apis_error_shape() {
    for mock in all().await {
        let (status, body) = not_mocked(&mock, reqwest::Method::GET, "/v1/nothing-here").await;
        let error = &body["error"];
        let message = error["message"]
            .as_str()
            .unwrap_or_else(|| panic!("{}: no error.message in {body}", mock.name()));
        assert!(
            message.contains("GET /v1/nothing-here is not mocked by tekup-mocks"),
            "{}: {message}",
            mock.name()
        );
        assert!(status == 404 || status == 400, "{}: {status}", mock.name());
        match mock.name() {
            "openai" | "stripe" => assert_eq!(error["type"], "invalid_request_error", "{body}"),
            "gemini" => {
                assert_eq!(error["code"], 404, "{body}");
                assert_eq!(error["status"], "NOT_FOUND", "{body}");
            }
            "graph" => {
                assert!(error["code"].is_string(), "{body}");
                assert!(error["innerError"]["request-id"].is_string(), "{body}");
            }
            other => panic!("a mock this test does not know: {other}"),
        }
        let journal = mock.journal();
        assert_eq!(journal.len(), 1, "{}: journaled", mock.name());
        assert_eq!(journal[0].status, Some(status));
    }
}

#[tokio::test]
async fn a_known_path_with_an_unserved_method_is_not_mocked_either() {
    let mock = OpenAi::start().await.unwrap();
    let (status, body) = not_mocked(&mock, reqwest::Method::DELETE, "/v1/chat/completions").await;
    assert_eq!(status, 404);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("DELETE /v1/chat/completions is not mocked"),
        "{body}"
    );
}
