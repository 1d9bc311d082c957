//! The Stripe mock: state, idempotency, errors and signed webhooks.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::HeaderMap;
use serde_json::Value;
use tekup_mocks::{stripe_signature, Stripe};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn post(
    stripe: &Stripe,
    path: &str,
    form: &[(&str, &str)],
    key: Option<&str>,
) -> reqwest::Response {
    let mut request = client()
        .post(format!("{}{path}", stripe.uri()))
        .bearer_auth("sk_test_123")
        .form(form);
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn created_customer_can_be_fetched_listed_and_deleted() {
    let stripe = Stripe::start().await.unwrap();
    let created = post(
        &stripe,
        "/v1/customers",
        &[("email", "a@example.com"), ("metadata[tenant]", "acme")],
        None,
    )
    .await;
    assert!(created.headers()["request-id"]
        .to_str()
        .unwrap()
        .starts_with("req_"));
    let created: Value = created.json().await.unwrap();
    let id = created["id"].as_str().unwrap();
    assert!(id.starts_with("cus_"));
    assert_eq!(created["metadata"]["tenant"], "acme");
    let fetched: Value = client()
        .get(format!("{}/v1/customers/{id}", stripe.uri()))
        .bearer_auth("sk_test_1")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(fetched, created);
    let listed: Value = client()
        .get(format!(
            "{}/v1/customers?email=a@example.com&limit=1",
            stripe.uri()
        ))
        .bearer_auth("sk_test_1")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["data"][0]["id"], id);
    assert_eq!(listed["has_more"], false);
    let list = |query: &'static str| {
        let url = format!("{}/v1/customers{query}", stripe.uri());
        async move {
            let listed: Value = client()
                .get(url)
                .bearer_auth("sk_test_1")
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            listed["data"].as_array().unwrap().len()
        }
    };
    assert_eq!(
        list("?email=nobody@example.com").await,
        0,
        "the email filter excludes"
    );
    assert_eq!(list("").await, 1);
    client()
        .delete(format!("{}/v1/customers/{id}", stripe.uri()))
        .bearer_auth("sk_test_1")
        .send()
        .await
        .unwrap();
    assert_eq!(list("").await, 0, "deleted customers are not listed");
    let missing = client()
        .post(format!("{}/v1/customers/{id}", stripe.uri()))
        .bearer_auth("sk_test_1")
        .form(&[("name", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["code"], "resource_missing");
    assert_eq!(
        body["error"]["message"],
        format!("No such customer: '{id}'")
    );
}

#[tokio::test]
async fn idempotency_key_replays_or_refuses() {
    let stripe = Stripe::start().await.unwrap();
    let form = [("amount", "2000"), ("currency", "usd")];
    let first = post(&stripe, "/v1/payment_intents", &form, Some("key-1")).await;
    let first: Value = first.json().await.unwrap();
    let again = post(&stripe, "/v1/payment_intents", &form, Some("key-1")).await;
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["id"], first["id"]);
    let other = post(
        &stripe,
        "/v1/payment_intents",
        &[("amount", "100"), ("currency", "usd")],
        Some("key-1"),
    )
    .await;
    assert_eq!(other.status(), 400);
    let body: Value = other.json().await.unwrap();
    assert_eq!(body["error"]["type"], "idempotency_error");
    let listed: Value = client()
        .get(format!("{}/v1/payment_intents", stripe.uri()))
        .bearer_auth("sk_test_1")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed["data"].as_array().unwrap().len(),
        1,
        "a replay creates nothing"
    );
}

#[tokio::test]
async fn errors_have_the_stripe_shape() {
    let stripe = Stripe::start().await.unwrap();
    let no_key = client()
        .post(format!("{}/v1/customers", stripe.uri()))
        .send()
        .await
        .unwrap();
    assert_eq!(no_key.status(), 401);
    let missing = post(&stripe, "/v1/payment_intents", &[("currency", "usd")], None).await;
    assert_eq!(missing.status(), 400);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["code"], "parameter_missing");
    assert_eq!(body["error"]["param"], "amount");
    assert_eq!(body["error"]["message"], "Missing required param: amount.");
    let declined = post(
        &stripe,
        "/v1/payment_intents",
        &[
            ("amount", "500"),
            ("currency", "usd"),
            ("payment_method", "pm_card_chargeDeclined"),
            ("confirm", "true"),
        ],
        None,
    )
    .await;
    assert_eq!(declined.status(), 402);
    let body: Value = declined.json().await.unwrap();
    assert_eq!(body["error"]["type"], "card_error");
    assert_eq!(
        body["error"]["payment_intent"]["status"],
        "requires_payment_method"
    );
}

#[tokio::test]
async fn invoice_lifecycle() {
    let stripe = Stripe::start().await.unwrap();
    let c: Value = post(&stripe, "/v1/customers", &[("name", "Acme")], None)
        .await
        .json()
        .await
        .unwrap();
    let cid = c["id"].as_str().unwrap();
    let inv: Value = post(&stripe, "/v1/invoices", &[("customer", cid)], None)
        .await
        .json()
        .await
        .unwrap();
    let iid = inv["id"].as_str().unwrap();
    post(
        &stripe,
        "/v1/invoiceitems",
        &[
            ("customer", cid),
            ("amount", "1500"),
            ("currency", "usd"),
            ("invoice", iid),
        ],
        None,
    )
    .await;
    let paid: Value = post(&stripe, &format!("/v1/invoices/{iid}/pay"), &[], None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(paid["status"], "paid");
    assert_eq!(paid["amount_paid"], 1500);
    assert!(paid["number"].as_str().unwrap().ends_with("-0001"));
    let again = post(&stripe, &format!("/v1/invoices/{iid}/pay"), &[], None).await;
    assert_eq!(again.status(), 400);
}

#[tokio::test]
async fn webhooks_are_signed_with_the_endpoint_secret() {
    let received: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let sink = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let sink = sink.clone();
            async move {
                let sig = headers["stripe-signature"].to_str().unwrap().to_owned();
                sink.lock().unwrap().push((sig, body));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let stripe = Stripe::builder()
        .webhook(url, "whsec_rust_test")
        .start()
        .await
        .unwrap();
    post(
        &stripe,
        "/v1/customers",
        &[("email", "hook@example.com")],
        None,
    )
    .await;
    let deliveries = stripe.wait_for_deliveries(1, Duration::from_secs(5)).await;
    assert_eq!(deliveries.len(), 1);
    assert!(deliveries[0].delivered, "{deliveries:?}");
    let (sig, body) = received.lock().unwrap()[0].clone();
    let t: i64 = sig
        .split(',')
        .next()
        .unwrap()
        .strip_prefix("t=")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(sig, stripe_signature("whsec_rust_test", t, &body));
    let event: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(event["type"], "customer.created");
    assert_eq!(event["data"]["object"]["email"], "hook@example.com");
}

async fn get_json(stripe: &Stripe, path_and_query: &str) -> (u16, Value) {
    let response = client()
        .get(format!("{}{path_and_query}", stripe.uri()))
        .bearer_auth("sk_test_1")
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn search_refuses_what_does_not_parse_and_never_matches_all() {
    let stripe = Stripe::start().await.unwrap();
    post(
        &stripe,
        "/v1/customers",
        &[("email", "a@example.com")],
        None,
    )
    .await;
    let (status, body) = get_json(
        &stripe,
        "/v1/customers/search?query=email%3Aa%40example.com",
    )
    .await;
    assert_eq!(
        status, 400,
        "an unquoted value is refused, not matched: {body}"
    );
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert_eq!(body["error"]["param"], "query");
    assert_eq!(
        body["error"]["message"],
        "Invalid search query at position 6: the value `a@example.com` must be in quotes: `'a@example.com'` (only numbers and null go unquoted)"
    );
    let (status, body) = get_json(
        &stripe,
        "/v1/payment_intents/search?query=status%3A%27succeeded%27+OR+amount%3E100+amount%3C5",
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("position 33: AND and OR cannot be combined"),
        "{body}"
    );
    let (status, body) = get_json(
        &stripe,
        "/v1/invoices/search?query=customer%3A%27cus_x%27&limit=0",
    )
    .await;
    assert_eq!(
        (status, body["error"]["param"].as_str()),
        (400, Some("limit"))
    );
    let (status, body) = get_json(
        &stripe,
        "/v1/customers/search?query=email%3A%27A%40example.com%27",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["object"], "search_result");
    assert_eq!(body["data"][0]["email"], "a@example.com");
    assert_eq!(body["next_page"], Value::Null);
}

#[tokio::test]
async fn three_d_secure_then_authentication_emits_stripes_events() {
    let stripe = Stripe::start().await.unwrap();
    let intent: Value = post(
        &stripe,
        "/v1/payment_intents",
        &[
            ("amount", "900"),
            ("currency", "eur"),
            ("payment_method", "pm_card_threeDSecure2Required"),
            ("confirm", "true"),
        ],
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(intent["status"], "requires_action");
    assert_eq!(intent["next_action"]["type"], "use_stripe_sdk");
    let id = intent["id"].as_str().unwrap();
    let done: Value = post(
        &stripe,
        &format!("/v1/payment_intents/{id}/confirm"),
        &[],
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(done["status"], "succeeded");
    let (_, events) = get_json(&stripe, "/v1/events?limit=10").await;
    let types: Vec<&str> = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "payment_intent.created",
            "payment_intent.requires_action",
            "payment_intent.succeeded"
        ]
    );
    let again = post(
        &stripe,
        &format!("/v1/payment_intents/{id}/confirm"),
        &[],
        None,
    )
    .await;
    assert_eq!(
        again.status(),
        400,
        "a succeeded intent cannot be confirmed again"
    );
}

#[tokio::test]
async fn an_unserved_url_gets_stripes_unrecognized_url_error_naming_it_not_mocked() {
    let stripe = Stripe::start().await.unwrap();
    let (status, body) = get_json(&stripe, "/v1/products?limit=3").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert_eq!(
        body["error"]["message"],
        "Unrecognized request URL (GET: /v1/products). GET /v1/products is not mocked by tekup-mocks: \
         the stripe mock does not serve this endpoint (mocks/README.md lists what each mock serves)"
    );
    let wrong_method = client()
        .delete(format!("{}/v1/payment_intents/pi_123", stripe.uri()))
        .bearer_auth("sk_test_1")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status(), 404);
    let body: Value = wrong_method.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Unrecognized request URL (DELETE: /v1/payment_intents/pi_123)."),
        "{body}"
    );
    let c: Value = post(&stripe, "/v1/customers", &[], None)
        .await
        .json()
        .await
        .unwrap();
    let inv: Value = post(
        &stripe,
        "/v1/invoices",
        &[("customer", c["id"].as_str().unwrap())],
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    let action = post(
        &stripe,
        &format!("/v1/invoices/{}/send_to_moon", inv["id"].as_str().unwrap()),
        &[],
        None,
    )
    .await;
    assert_eq!(action.status(), 404);
    let body: Value = action.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/send_to_moon is not mocked by tekup-mocks"),
        "{body}"
    );
}
