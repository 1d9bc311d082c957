//! The Graph mock: token, paging with absolute links, delta, sendMail, errors.

use std::time::Duration;

use serde_json::{json, Value};
use tekup_mocks::{Fault, Graph};

const ADELE: &str = "adele.vance@contoso.test";

async fn token(graph: &Graph) -> String {
    let response: Value = reqwest::Client::new()
        .post(graph.token_url())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "app"),
            ("client_secret", "s3cret"),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(response["token_type"], "Bearer");
    response["access_token"].as_str().unwrap().to_owned()
}

async fn get(url: &str, token: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn page_chain_is_absolute_and_complete() {
    let graph = Graph::start().await.unwrap();
    let token = token(&graph).await;
    let mut url = format!(
        "{}/users/{ADELE}/messages?$top=10&$select=subject",
        graph.base_url()
    );
    let mut subjects = Vec::new();
    let mut pages = 0;
    loop {
        let page: Value = get(&url, &token).await.json().await.unwrap();
        pages += 1;
        subjects.extend(
            page["value"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["subject"].as_str().unwrap().to_owned()),
        );
        match page["@odata.nextLink"].as_str() {
            Some(next) => {
                assert!(next.starts_with(&graph.uri()), "{next}");
                url = next.to_owned();
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(subjects.len(), 25);
    assert_eq!(subjects[0], "Message 25 from John Smith", "newest first");
}

#[tokio::test]
async fn delta_returns_only_later_changes() {
    let graph = Graph::start().await.unwrap();
    let token = token(&graph).await;
    let mut url = format!("{}/users/{ADELE}/contacts/delta", graph.base_url());
    let delta_link = loop {
        let page: Value = get(&url, &token).await.json().await.unwrap();
        if let Some(d) = page["@odata.deltaLink"].as_str() {
            assert_eq!(page["value"].as_array().unwrap().len(), 3);
            break d.to_owned();
        }
        url = page["@odata.nextLink"].as_str().unwrap().to_owned();
    };
    let created: Value = reqwest::Client::new()
        .post(format!("{}/users/{ADELE}/contacts", graph.base_url()))
        .bearer_auth(&token)
        .json(&json!({"givenName": "Pat", "surname": "Lee", "emailAddresses": [{"address": "pat@example.com"}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let changes: Value = get(&delta_link, &token).await.json().await.unwrap();
    assert_eq!(changes["value"].as_array().unwrap().len(), 1);
    assert_eq!(changes["value"][0]["id"], created["id"]);
    let found: Value = get(&format!("{}/users/{ADELE}/contacts?$filter=emailAddresses/any(a:a/address eq 'pat@example.com')", graph.base_url()), &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(found["value"][0]["displayName"], "Pat Lee");
}

#[tokio::test]
async fn send_mail_is_accepted_and_delivered() {
    let graph = Graph::start().await.unwrap();
    let token = token(&graph).await;
    let response = reqwest::Client::new()
        .post(format!("{}/users/{ADELE}/sendMail", graph.base_url()))
        .bearer_auth(&token)
        .json(&json!({"message": {"subject": "Incident", "body": {"contentType": "Text", "content": "alert"},
            "toRecipients": [{"emailAddress": {"address": "megan.bowen@contoso.test"}}]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let inbox: Value = get(&format!("{}/users/megan.bowen@contoso.test/mailFolders/inbox/messages?$filter=subject eq 'Incident'", graph.base_url()), &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(inbox["value"].as_array().unwrap().len(), 1);
    let sent: Value = get(
        &format!(
            "{}/users/{ADELE}/mailFolders/sentitems/messages",
            graph.base_url()
        ),
        &token,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(sent["value"][0]["subject"], "Incident");
}

#[tokio::test]
async fn errors_and_throttling_have_the_graph_shape() {
    let graph = Graph::start().await.unwrap();
    let anonymous = get(&format!("{}/users", graph.base_url()), "made-up").await;
    assert_eq!(anonymous.status(), 401);
    let token = token(&graph).await;
    let missing = reqwest::Client::new()
        .get(format!("{}/users/{ADELE}/messages/nope", graph.base_url()))
        .bearer_auth(&token)
        .header("client-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.headers()["client-request-id"], "abc-123");
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["code"], "ErrorItemNotFound");
    assert_eq!(body["error"]["innerError"]["client-request-id"], "abc-123");
    assert!(
        body["error"]["innerError"]["request-id"]
            .as_str()
            .unwrap()
            .len()
            == 36
    );
    graph.inject(Fault::rate_limit(Duration::from_secs(3)).times(1));
    let throttled = get(&format!("{}/users", graph.base_url()), &token).await;
    assert_eq!(throttled.status(), 429);
    assert_eq!(throttled.headers()["retry-after"], "3");
    let body: Value = throttled.json().await.unwrap();
    assert_eq!(body["error"]["code"], "TooManyRequests");
    let me = get(&format!("{}/me/messages", graph.base_url()), &token).await;
    assert_eq!(me.status(), 400);
    let bad_scope = reqwest::Client::new()
        .post(graph.token_url())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "app"),
            ("client_secret", "s"),
            ("scope", "Mail.Read"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(bad_scope.status(), 400);
    let body: Value = bad_scope.json().await.unwrap();
    assert_eq!(body["error"], "invalid_scope");
    assert_eq!(body["error_codes"][0], 1_002_012);
}
