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

async fn batch(graph: &Graph, token: &str, body: Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/$batch", graph.base_url()))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn batch_mirrors_graph_on_urls_dependencies_and_malformed_batches() {
    let graph = Graph::start().await.unwrap();
    let token = token(&graph).await;
    // An absolute URL is reduced to its path, below /v1.0: Graph finds no segment 'v1.0'.
    let (status, body) = batch(&graph, &token, json!({"requests": [
        {"id": "abs", "method": "GET", "url": format!("https://graph.microsoft.com/v1.0/users/{ADELE}")},
        {"id": "rel", "method": "GET", "url": format!("users/{ADELE}?$select=displayName")},
        // msgraph-core's snake_case `depends_on` is not Graph's property: ignored, the request runs.
        {"id": "snake", "method": "GET", "url": "/users", "depends_on": ["abs"]},
        // A path the mock does not serve answers as Graph does, naming the call as not mocked.
        {"id": "gap", "method": "GET", "url": format!("/users/{ADELE}/calendars")},
    ]}))
    .await;
    assert_eq!(status, 200);
    let by_id = |id: &str| {
        body["responses"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(by_id("abs")["status"], 400);
    assert_eq!(
        by_id("abs")["body"]["error"]["message"],
        "Resource not found for the segment 'v1.0'."
    );
    assert_eq!(by_id("rel")["body"]["displayName"], "Adele Vance");
    assert_eq!(by_id("rel")["headers"]["Content-Type"], "application/json");
    assert_eq!(by_id("snake")["status"], 200);
    assert_eq!(by_id("gap")["status"], 400);
    let gap = by_id("gap")["body"]["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        gap.starts_with("Resource not found for the segment 'calendars'.")
            && gap.contains(
                "GET /v1.0/users/adele.vance@contoso.test/calendars is not mocked by tekup-mocks"
            ),
        "{gap}"
    );

    for (requests, wanted) in [
        (
            json!([{"id": "1", "method": "GET", "url": "/users"}, {"id": "1", "method": "GET", "url": "/users"}]),
            "appears more than once",
        ),
        (
            json!([{"id": "1", "method": "GET", "url": "/users", "dependsOn": ["2"]}, {"id": "2", "method": "GET", "url": "/users"}]),
            "Invalid dependency for request Id '1'",
        ),
        (
            json!([{"id": "1", "method": "POST", "url": format!("/users/{ADELE}/contacts"), "body": {"givenName": "X"}}]),
            "Write request id : 1 does not contain Content-Type header or body.",
        ),
        (
            json!([{"id": "1", "url": "/users"}]),
            "Invalid batch payload format.",
        ),
    ] {
        let (status, body) = batch(&graph, &token, json!({ "requests": requests })).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"]["code"], "BadRequest");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(wanted), "{message}");
    }
    let (status, body) = batch(&graph, &token, json!({"value": []})).await;
    assert_eq!(
        (status, body["error"]["message"].as_str()),
        (400, Some("Invalid batch payload format."))
    );
    // The batch needs a token like any call; inner requests carry the batch's.
    let anonymous = reqwest::Client::new()
        .post(format!("{}/$batch", graph.base_url()))
        .json(&json!({"requests": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}

#[tokio::test]
async fn delta_change_type_and_select_survive_the_links() {
    let graph = Graph::start().await.unwrap();
    let token = token(&graph).await;
    let base = format!("{}/users/{ADELE}/messages/delta()", graph.base_url());
    let mut url = format!("{base}?changeType=created&$select=subject");
    let mut created = Vec::new();
    let link = loop {
        let page: Value = get(&url, &token).await.json().await.unwrap();
        let values = page["value"].as_array().unwrap();
        assert!(
            values.iter().all(|m| m.get("body").is_none()),
            "$select kept on every page"
        );
        created.extend(values.iter().cloned());
        if let Some(d) = page["@odata.deltaLink"].as_str() {
            assert!(
                d.contains("changeType=created") && d.contains("/delta()?"),
                "{d}"
            );
            break d.to_owned();
        }
        url = page["@odata.nextLink"].as_str().unwrap().to_owned();
        assert!(url.contains("changeType=created"), "{url}");
    };
    assert_eq!(
        created.len(),
        25,
        "every message of a first round is a creation"
    );
    // An update is not a creation: the created-only round stays empty.
    let first: Value = get(
        &format!("{}/users/{ADELE}/messages?$top=1", graph.base_url()),
        &token,
    )
    .await
    .json()
    .await
    .unwrap();
    let id = first["value"][0]["id"].as_str().unwrap();
    reqwest::Client::new()
        .patch(format!("{}/users/{ADELE}/messages/{id}", graph.base_url()))
        .bearer_auth(&token)
        .json(&json!({"isRead": true}))
        .send()
        .await
        .unwrap();
    let created_only: Value = get(&link, &token).await.json().await.unwrap();
    assert_eq!(created_only["value"], json!([]));
    let updated: Value = get(&format!("{base}?changeType=updated"), &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(updated["value"], json!([]), "a first round has no updates");
    let bad = get(&format!("{base}?changeType=moved"), &token).await;
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn attachments_value_and_refusals() {
    let graph = Graph::start().await.unwrap();
    let token = token(&graph).await;
    let first: Value = get(
        &format!("{}/users/{ADELE}/messages?$top=1", graph.base_url()),
        &token,
    )
    .await
    .json()
    .await
    .unwrap();
    let id = first["value"][0]["id"].as_str().unwrap();
    let attachments = format!(
        "{}/users/{ADELE}/messages/{id}/attachments",
        graph.base_url()
    );
    let post = |body: Value| {
        reqwest::Client::new()
            .post(&attachments)
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let created: Value = post(
        json!({"@odata.type": "#microsoft.graph.fileAttachment", "name": "a.pdf",
        "contentType": "application/pdf", "contentBytes": "JVBERi0xLjQK"}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(created["size"], 9);
    let value = get(
        &format!("{attachments}/{}/$value", created["id"].as_str().unwrap()),
        &token,
    )
    .await;
    assert_eq!(value.headers()["content-type"], "application/pdf");
    assert_eq!(&value.bytes().await.unwrap()[..], b"%PDF-1.4\n");
    for (body, status, code) in [
        (
            json!({"name": "a", "contentBytes": "AA=="}),
            400,
            "ErrorInvalidRequest",
        ),
        (
            json!({"@odata.type": "#microsoft.graph.fileAttachment", "contentBytes": "AA=="}),
            400,
            "ErrorRequiredPropertyMissing",
        ),
        (
            json!({"@odata.type": "#microsoft.graph.fileAttachment", "name": "a", "contentBytes": "not base64!"}),
            400,
            "ErrorInvalidProperty",
        ),
        (
            json!({"@odata.type": "#microsoft.graph.referenceAttachment", "name": "a"}),
            501,
            "NotImplemented",
        ),
    ] {
        let response = post(body).await.unwrap();
        assert_eq!(response.status().as_u16(), status);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{body}");
    }
}

#[tokio::test]
async fn search_refusals_name_the_problem() {
    let graph = Graph::start().await.unwrap();
    let token = token(&graph).await;
    let messages = format!("{}/users/{ADELE}/messages", graph.base_url());
    for (search, status, needle) in [
        ("\"NOT Maria\"", 501, "NOT"),
        ("\"sub*\"", 501, "wildcards"),
        ("\"subject:\"", 400, "has no value"),
        ("\"Maria", 400, "unbalanced quotes"),
        ("\"Maria OR\"", 400, "dangling"),
    ] {
        let response = get(&format!("{messages}?$search={}", urlencode(search)), &token).await;
        assert_eq!(response.status().as_u16(), status, "{search}");
        let body: Value = response.json().await.unwrap();
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{search}: {message}");
    }
    let found: Value = get(
        &format!(
            "{messages}?$search={}&$top=50",
            urlencode("\"to:adele\" AND \"subject:Message 2\"")
        ),
        &token,
    )
    .await
    .json()
    .await
    .unwrap();
    let subjects: Vec<&str> = found["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["subject"].as_str().unwrap())
        .collect();
    assert_eq!(subjects.len(), 7, "Message 2 and 20-25: {subjects:?}");
}

fn urlencode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn a_seed_attachment_must_name_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("graph.yaml");
    std::fs::write(&path, "tenant: t\nusers:\n  - { id: u, user-principal-name: u@x.test, display-name: U, messages: 2,\n      attachments: [ { message: 3, name: a.txt, content-type: text/plain, text: hi } ] }\n").unwrap();
    let err = tekup_mocks::GraphSeed::from_file(&path)
        .unwrap_err()
        .to_string();
    assert!(err.contains("users[0].attachments[0].message: 3"), "{err}");
}
