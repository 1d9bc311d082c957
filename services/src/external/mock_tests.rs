//! The external API clients against the project's own high-fidelity mocks
//! (`tekup-mocks`), in real time: wire formats, auth, paging, idempotency,
//! Retry-After and the breaker, checked through the mocks' journals.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tekup_mocks::{stripe_signature, Fault, Gemini, Graph, Stripe};

use super::*;
use crate::metrics::Metrics;
use crate::resilience::{BreakerConfig, BreakerState, Jitter, Resilience, RetryPolicy};

fn http_with(attempts: u32, breaker: BreakerConfig) -> ResilientHttp {
    let metrics = Arc::new(Metrics::new());
    let policy = RetryPolicy::default()
        .max_attempts(attempts)
        .backoff(Duration::from_millis(5), Duration::from_millis(20))
        .jitter(Jitter::None);
    let resilience = Resilience::new(policy, breaker, metrics.circuit_breaker_state.clone());
    ResilientHttp::new("flow-api", metrics, Arc::new(resilience))
}

fn http() -> ResilientHttp {
    http_with(3, BreakerConfig::default())
}

fn stripe_client(stripe: &Stripe, http: &ResilientHttp) -> StripeClient {
    StripeClient::new(http.clone(), &stripe.uri(), "sk_test_tekup".into())
}

#[tokio::test]
async fn stripe_creates_customers_and_payment_intents_with_idempotency_keys() {
    let stripe = Stripe::start().await.unwrap();
    let client = stripe_client(&stripe, &http());
    let customer = client
        .create_customer(
            &NewCustomer::new()
                .email("john@example.com")
                .name("John Smith")
                .metadata("tenant", "acme"),
        )
        .await
        .unwrap();
    assert!(customer.id.starts_with("cus_"), "{customer:?}");
    assert_eq!(customer.metadata["tenant"], "acme");
    let intent = client
        .create_payment_intent(
            &NewPaymentIntent::new(2_000, "eur")
                .customer(&customer.id)
                .idempotency_key("lead-42-deposit"),
        )
        .await
        .unwrap();
    assert!(intent.id.starts_with("pi_"), "{intent:?}");
    assert_eq!((intent.amount, intent.currency.as_str()), (2_000, "eur"));
    assert_eq!(intent.customer.as_deref(), Some(customer.id.as_str()));
    // The same key again replays the first answer instead of charging twice.
    let again = client
        .create_payment_intent(
            &NewPaymentIntent::new(2_000, "eur")
                .customer(&customer.id)
                .idempotency_key("lead-42-deposit"),
        )
        .await
        .unwrap();
    assert_eq!(again.id, intent.id);
    let journal = stripe.journal();
    assert_eq!(journal.len(), 3);
    assert_eq!(
        journal[0].header("authorization"),
        Some("Bearer sk_test_tekup")
    );
    assert!(journal[0].header("idempotency-key").is_some());
    assert!(journal[0]
        .body_form()
        .contains(&("metadata[tenant]".into(), "acme".into())));
    assert_eq!(
        journal[1].header("idempotency-key"),
        Some("lead-42-deposit")
    );
}

#[tokio::test]
async fn stripe_errors_keep_type_code_and_param() {
    let stripe = Stripe::start().await.unwrap();
    let http = http();
    let client = stripe_client(&stripe, &http);
    let error = client
        .create_payment_intent(&NewPaymentIntent::new(-5, "eur"))
        .await
        .unwrap_err();
    let StripeError::Api {
        status,
        kind,
        param,
        request_id,
        ..
    } = &error
    else {
        panic!("expected an API error, got {error:?}");
    };
    assert_eq!((*status, kind.as_str()), (400, "invalid_request_error"));
    assert_eq!(param.as_deref(), Some("amount"));
    assert!(request_id.as_deref().is_some_and(|r| r.starts_with("req_")));
    assert_eq!(stripe.journal().len(), 1, "a 400 is not retried");

    let live = StripeClient::new(http, &stripe.uri(), "sk_live_nope".into());
    let error = live.create_customer(&NewCustomer::new()).await.unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("stripe answered 401 invalid_request_error (api_key_invalid)"),
        "{error}"
    );
}

#[tokio::test]
async fn stripe_rate_limit_is_retried_after_retry_after_with_the_same_key() {
    let stripe = Stripe::start().await.unwrap();
    stripe.inject(Fault::rate_limit(Duration::from_secs(1)).times(1));
    let client = stripe_client(&stripe, &http());
    let started = Instant::now();
    let customer = client
        .create_customer(&NewCustomer::new().email("a@example.com"))
        .await
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let journal = stripe.journal();
    assert_eq!(journal.len(), 2, "one 429, one success");
    assert_eq!(journal[0].status, Some(429));
    assert_eq!(journal[1].status, Some(200));
    assert_eq!(
        journal[0].header("idempotency-key"),
        journal[1].header("idempotency-key")
    );
    assert!(customer.id.starts_with("cus_"));
}

#[tokio::test]
async fn the_breaker_opens_on_a_failing_stripe_and_closes_when_it_recovers() {
    let stripe = Stripe::start().await.unwrap();
    stripe.inject(Fault::status(500));
    let breaker = BreakerConfig {
        failure_threshold: 5,
        open_for: Duration::from_millis(300),
        half_open_successes: 3,
    };
    let http = http_with(1, breaker);
    let client = stripe_client(&stripe, &http);
    for _ in 0..5 {
        let error = client
            .create_customer(&NewCustomer::new())
            .await
            .unwrap_err();
        assert!(
            matches!(error, StripeError::Api { status: 500, .. }),
            "{error:?}"
        );
    }
    let error = client
        .create_customer(&NewCustomer::new())
        .await
        .unwrap_err();
    assert!(
        error
            .source_chain()
            .contains("circuit breaker for stripe is open"),
        "{error:?}"
    );
    assert_eq!(stripe.journal().len(), 5, "nothing sent while open");
    stripe.clear_faults();
    tokio::time::sleep(Duration::from_millis(350)).await;
    for _ in 0..3 {
        client.create_customer(&NewCustomer::new()).await.unwrap();
    }
    assert_eq!(
        http.resilience().breaker("stripe").state(),
        BreakerState::Closed
    );
}

#[test]
fn webhooks_signed_by_the_mock_verify() {
    let secret = "whsec_tekup";
    let payload = json!({ "id": "evt_1", "type": "payment_intent.succeeded" }).to_string();
    let now = chrono::Utc::now().timestamp();
    let header = stripe_signature(secret, now, &payload);
    assert_eq!(
        verify_webhook(
            secret,
            &header,
            payload.as_bytes(),
            now,
            stripe::WEBHOOK_TOLERANCE
        ),
        Ok(now)
    );
    assert!(verify_webhook(
        "whsec_other",
        &header,
        payload.as_bytes(),
        now,
        stripe::WEBHOOK_TOLERANCE
    )
    .is_err());
}

async fn graph_client(graph: &Graph, secret: &str, http: &ResilientHttp) -> GraphClient {
    GraphClient::new(
        http.clone(),
        graph::GraphConfig {
            base_url: graph.uri(),
            login_base_url: graph.uri(),
            tenant_id: graph.tenant(),
            client_id: "tekup-app".into(),
            client_secret: secret.into(),
            mailbox: "adele.vance@contoso.test".into(),
        },
    )
    .with_page_size(10)
}

#[tokio::test]
async fn graph_lists_every_page_with_one_cached_token_and_sends_mail() {
    let graph = Graph::builder()
        .client("tekup-app", "s3cret")
        .start()
        .await
        .unwrap();
    let client = graph_client(&graph, "s3cret", &http()).await;
    let messages = client.list_messages().await.unwrap();
    assert_eq!(messages.len(), 25, "three pages of 10, 10 and 5");
    assert!(messages.iter().all(|m| !m.id.is_empty()));
    client
        .send_mail(
            &OutgoingMail::text("Incident", "An incident was opened.")
                .to("megan.bowen@contoso.test"),
        )
        .await
        .unwrap();
    let journal = graph.journal();
    let tokens = journal
        .iter()
        .filter(|r| r.path.ends_with("/oauth2/v2.0/token"))
        .count();
    let pages = journal
        .iter()
        .filter(|r| r.path.ends_with("/messages"))
        .count();
    assert_eq!((tokens, pages), (1, 3), "{journal:#?}");
    let sent = journal
        .iter()
        .find(|r| r.path.ends_with("/sendMail"))
        .unwrap();
    assert_eq!(sent.status, Some(202));
    assert!(sent
        .header("authorization")
        .is_some_and(|a| a.starts_with("Bearer ")));
    let body = sent.body_json().unwrap();
    assert_eq!(
        body["message"]["toRecipients"][0]["emailAddress"]["address"],
        "megan.bowen@contoso.test"
    );
}

#[tokio::test]
async fn graph_token_and_api_errors_are_typed() {
    let graph = Graph::builder()
        .client("tekup-app", "s3cret")
        .start()
        .await
        .unwrap();
    let wrong = graph_client(&graph, "wrong", &http()).await;
    let error = wrong.list_messages().await.unwrap_err();
    assert!(
        matches!(&error, GraphError::Token { status: 401, error, .. } if error == "invalid_client"),
        "{error:?}"
    );
    let http = http();
    let client = GraphClient::new(
        http.clone(),
        graph::GraphConfig {
            base_url: graph.uri(),
            login_base_url: graph.uri(),
            tenant_id: graph.tenant(),
            client_id: "tekup-app".into(),
            client_secret: "s3cret".into(),
            mailbox: "nobody@contoso.test".into(),
        },
    );
    let error = client.list_messages().await.unwrap_err();
    let GraphError::Api {
        status,
        code,
        request_id,
        ..
    } = &error
    else {
        panic!("expected a Graph API error, got {error:?}");
    };
    assert_eq!(*status, 404);
    assert!(!code.is_empty());
    assert!(request_id.is_some(), "{error:?}");
}

#[tokio::test]
async fn graph_throttling_is_retried_after_retry_after() {
    let graph = Graph::start().await.unwrap();
    graph.inject(
        Fault::rate_limit(Duration::from_secs(1))
            .on_path("/v1.0/users")
            .times(1),
    );
    let client = graph_client(&graph, "any", &http()).await;
    let started = Instant::now();
    assert_eq!(client.list_messages().await.unwrap().len(), 25);
    assert!(started.elapsed() >= Duration::from_secs(1));
    let throttled = graph
        .journal()
        .iter()
        .filter(|r| r.status == Some(429))
        .count();
    assert_eq!(throttled, 1);
}

#[tokio::test]
async fn gemini_returns_the_function_call_for_a_voice_command() {
    let gemini = Gemini::start().await.unwrap();
    let client = GeminiClient::new(
        http(),
        &gemini.uri(),
        "test-key".into(),
        gemini::DEFAULT_MODEL,
    );
    let prompt = Prompt::user("Create a lead for John Smith, email john@example.com")
        .system("You operate a CRM.")
        .function(FunctionDeclaration {
            name: "create_lead".into(),
            description: "Creates a lead".into(),
            parameters: json!({
                "type": "object",
                "properties": { "name": { "type": "string" }, "email": { "type": "string" } },
                "required": ["name"],
            }),
        });
    let reply = client.generate(&prompt).await.unwrap();
    assert_eq!(
        reply,
        GeminiReply::FunctionCall {
            name: "create_lead".into(),
            args: json!({ "name": "John Smith", "email": "john@example.com" }),
        }
    );
    let follow_up = prompt.then_function_result(
        "create_lead",
        json!({ "name": "John Smith" }),
        json!({ "id": "lead-1" }),
    );
    assert_eq!(
        client.generate(&follow_up).await.unwrap(),
        GeminiReply::Text("Lead lead-1 created.".into())
    );
    let journal = gemini.journal();
    assert_eq!(
        journal[0].path,
        "/v1beta/models/gemini-2.0-flash:generateContent"
    );
    assert_eq!(journal[0].header("x-goog-api-key"), Some("test-key"));
    assert!(journal[0]
        .query
        .as_deref()
        .is_none_or(|q| !q.contains("key=")));
}

#[tokio::test]
async fn gemini_errors_carry_googles_status() {
    let gemini = Gemini::builder().api_key("right").start().await.unwrap();
    let client = GeminiClient::new(http(), &gemini.uri(), "wrong".into(), gemini::DEFAULT_MODEL);
    let error = client.generate(&Prompt::user("hi")).await.unwrap_err();
    let GeminiError::Api {
        code,
        status,
        message,
    } = &error
    else {
        panic!("expected an API error, got {error:?}");
    };
    assert_eq!((*code, status.as_str()), (400, "INVALID_ARGUMENT"));
    assert!(message.starts_with("API key not valid"), "{message}");
    assert_eq!(gemini.journal().len(), 1);
}

/// The error and its sources, joined, for assertions on nested messages.
trait SourceChain {
    fn source_chain(&self) -> String;
}

impl<E: std::error::Error> SourceChain for E {
    fn source_chain(&self) -> String {
        let mut text = self.to_string();
        let mut source = self.source();
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        text
    }
}
