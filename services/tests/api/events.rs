//! Events through Redis and the gateway: routing, tenant isolation, resume,
//! slow consumers, audit.

use std::time::Duration;

use serde_json::json;
use tekup_services::events::CrossAppEvent;
use tekup_services::gateway::{GatewayArgs, CLOSE_PING_TIMEOUT, CLOSE_SLOW_CONSUMER};
use tekup_services::ServiceName::FlowApi;

use crate::helpers::{assert_status, eventually, Options, TestApp, ACME_KEY, GLOBEX_KEY, WITHIN};
use crate::ws::WsClient;

const NOTHING_FOR: Duration = Duration::from_millis(800);

#[tokio::test]
async fn lead_created_reaches_exactly_the_tenants_routed_apps() {
    let app = TestApp::spawn_bus().await;
    let mut crm = app.ws(ACME_KEY, "acme", "crm-web").await;
    let mut flow = app.ws(ACME_KEY, "acme", "flow-web").await;
    let mut inbox = app.ws(ACME_KEY, "acme", "inbox-ai").await;
    let mut spy = app.ws(GLOBEX_KEY, "globex", "crm-web").await;
    assert_eq!(crm.welcome["rooms"], json!(["tenant:acme", "app:crm-web"]));

    let lead = app
        .as_app(ACME_KEY, "acme", "flow-web")
        .post(
            FlowApi,
            "/leads",
            json!({ "firstName": "Eve", "email": "eve@example.com" }),
        )
        .await;
    assert_status(&lead, 201);
    let id = lead.json["id"].as_str().unwrap();
    for client in [&mut crm, &mut flow] {
        let frame = client
            .next_event(WITHIN)
            .await
            .expect("LEAD_CREATED arrives");
        assert_eq!(frame["event"]["type"], "LEAD_CREATED");
        assert_eq!(frame["event"]["tenantId"], "acme");
        assert_eq!(frame["event"]["data"]["id"], id);
        assert!(frame["event"]["data"]["contactId"].is_string(), "{frame}");
    }
    assert_eq!(
        inbox.next_event(NOTHING_FOR).await,
        None,
        "inbox-ai is not routed LEAD_CREATED"
    );
    assert_eq!(
        spy.next_event(NOTHING_FOR).await,
        None,
        "another tenant received the event"
    );

    // Audited per room; the audit writer batches, so wait for its rows.
    let rows: Vec<(String, i32)> = eventually("the audit rows", || async {
        let rows: Vec<(String, i32)> = sqlx::query_as(
            "SELECT app, connections FROM gateway.event_audit WHERE tenant_id = 'acme' AND event_type = 'LEAD_CREATED' ORDER BY app",
        )
        .fetch_all(&app.admin)
        .await
        .unwrap();
        (rows.len() >= 2).then_some(rows)
    })
    .await;
    assert_eq!(
        rows,
        [("crm-web".to_owned(), 1), ("flow-web".to_owned(), 1)]
    );
    let metrics = app.metrics(app.gateway()).await;
    assert!(
        metrics.contains("websocket_connections_active 4"),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"websocket_events_published_total{event_type="LEAD_CREATED"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_client_cannot_join_another_tenants_room_and_target_narrows_delivery() {
    let app = TestApp::spawn_bus().await;
    let mut crm = app.ws(ACME_KEY, "acme", "crm-web").await;
    let mut flow = app.ws(ACME_KEY, "acme", "flow-web").await;
    crm.send(json!({ "action": "join", "room": "tenant:globex" }))
        .await;
    let refused = crm.next(WITHIN).await.unwrap();
    assert_eq!(refused["type"], "error");
    assert_eq!(refused["code"], "forbidden");
    crm.send(json!({ "action": "join", "room": "app:flow-web" }))
        .await;
    assert_eq!(crm.next(WITHIN).await.unwrap()["code"], "forbidden");

    let events = app.events.as_ref().unwrap();
    events
        .publish(&CrossAppEvent::new(
            "LEAD_CREATED",
            "test",
            "globex",
            json!({ "n": 1 }),
        ))
        .await
        .unwrap();
    let targeted = CrossAppEvent::new("LEAD_CREATED", "test", "acme", json!({ "n": 2 }))
        .with_target(vec!["flow-web".into()]);
    events.publish(&targeted).await.unwrap();
    let got = flow.next_event(WITHIN).await.unwrap();
    assert_eq!(got["event"]["data"]["n"], 2);
    assert_eq!(
        crm.next_event(NOTHING_FOR).await,
        None,
        "crm-web got a globex event or one targeted at flow-web"
    );
}

#[tokio::test]
async fn bad_credentials_are_refused_before_the_upgrade() {
    let app = TestApp::spawn_bus().await;
    let wrong = WsClient::try_connect(app.gateway(), GLOBEX_KEY, "acme", "crm-web", None).await;
    let Err(tokio_tungstenite::tungstenite::Error::Http(response)) = wrong else {
        panic!("a foreign key was accepted");
    };
    assert_eq!(response.status().as_u16(), 403);
    let not_allowed =
        WsClient::try_connect(app.gateway(), ACME_KEY, "acme", "evil-app", None).await;
    assert!(
        matches!(not_allowed, Err(tokio_tungstenite::tungstenite::Error::Http(r)) if r.status().as_u16() == 403)
    );
}

#[tokio::test]
async fn a_reconnecting_client_resumes_without_gap_or_duplicate() {
    let app = TestApp::spawn_bus().await;
    let events = app.events.clone().unwrap();
    let publish = move |n: u32| {
        let events = events.clone();
        async move {
            let event = CrossAppEvent::new("CONTACT_UPDATED", "test", "acme", json!({ "n": n }));
            events.publish(&event).await.unwrap();
        }
    };
    let mut client = app.ws(ACME_KEY, "acme", "inbox-ai").await;
    for n in 1..=5 {
        publish(n).await;
    }
    let mut last_cursor = String::new();
    for n in 1..=3 {
        let frame = client.next_event(WITHIN).await.unwrap();
        assert_eq!(frame["event"]["data"]["n"], n);
        last_cursor = frame["cursor"].as_str().unwrap().to_owned();
    }
    drop(client);
    for n in 6..=10 {
        publish(n).await;
    }
    // Events keep coming while the client reconnects.
    let more = tokio::spawn({
        let publish = publish.clone();
        async move {
            for n in 11..=30 {
                publish(n).await;
            }
        }
    });
    let mut client = WsClient::connect(
        app.gateway(),
        ACME_KEY,
        "acme",
        "inbox-ai",
        Some(&last_cursor),
    )
    .await;
    more.await.unwrap();
    let mut seen = Vec::new();
    while let Some(frame) = client.next_event(Duration::from_secs(2)).await {
        seen.push(frame["event"]["data"]["n"].as_u64().unwrap());
        if seen.len() == 27 {
            break;
        }
    }
    assert_eq!(seen, (4..=30).collect::<Vec<u64>>());
    assert_eq!(
        client.next_event(NOTHING_FOR).await,
        None,
        "a duplicate after the replay"
    );
}

#[tokio::test]
async fn a_slow_client_is_disconnected_without_holding_back_the_others() {
    let options = Options {
        gateway: GatewayArgs {
            buffer: 4,
            ping_secs: 20,
            ..GatewayArgs::default()
        },
        ..Options::bus()
    };
    let app = TestApp::start(options, |_| {}).await;
    let mut slow = app.ws(ACME_KEY, "acme", "crm-web").await;
    let mut fast = app.ws(ACME_KEY, "acme", "crm-web").await;
    let events = app.events.clone().unwrap();
    // Large frames fill the socket buffers of a client that does not read.
    let blob = "x".repeat(64 * 1024);
    const N: u64 = 400;
    let publisher = tokio::spawn(async move {
        for n in 0..N {
            let event = CrossAppEvent::new(
                "CONTACT_UPDATED",
                "test",
                "acme",
                json!({ "n": n, "blob": blob }),
            );
            events.publish(&event).await.unwrap();
        }
    });
    let reader = tokio::spawn(async move {
        for n in 0..N {
            let frame = fast
                .next_event(WITHIN)
                .await
                .unwrap_or_else(|| panic!("fast client stalled at {n}"));
            assert_eq!(frame["event"]["data"]["n"], n);
        }
    });
    // Once the gateway gives up on the slow client, the client finds the
    // close frame after what was already in its socket.
    let metrics = eventually("the slow consumer to be closed", || async {
        let metrics = app.metrics(app.gateway()).await;
        metrics
            .contains("websocket_slow_consumers_total 1")
            .then_some(metrics)
    })
    .await;
    assert_eq!(
        slow.close_code(WITHIN).await,
        Some(CLOSE_SLOW_CONSUMER),
        "{metrics}"
    );
    reader
        .await
        .expect("the fast client received every event in order");
    publisher.await.unwrap();
    assert!(
        metrics.contains("websocket_slow_consumers_total 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_client_that_never_answers_pings_is_closed_and_one_that_does_stays() {
    let options = Options {
        gateway: GatewayArgs {
            buffer: 64,
            ping_secs: 1,
            ..GatewayArgs::default()
        },
        ..Options::bus()
    };
    let app = TestApp::start(options, |_| {}).await;
    // Not polled, so it never answers the gateway's pings.
    let mut silent = app.ws(ACME_KEY, "acme", "crm-web").await;
    let mut alive = app.ws(ACME_KEY, "acme", "flow-web").await;
    // Reading answers pings (tungstenite replies to them); two ping
    // intervals and more pass meanwhile.
    assert_eq!(alive.next(Duration::from_millis(3500)).await, None);
    assert_eq!(silent.close_code(WITHIN).await, Some(CLOSE_PING_TIMEOUT));
    alive.send(json!({ "action": "ping" })).await;
    assert_eq!(
        alive.next(WITHIN).await.unwrap()["type"],
        "pong",
        "the answering client was closed"
    );
}
