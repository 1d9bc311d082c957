//! Each toxic's effect as a client of the proxy sees it.

use std::io::ErrorKind;
use std::time::{Duration, Instant};

use futures::future::join_all;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::common::{
    connect, eventually, ms, pattern, proxy_to, read_to_end, round_trip, Server, WITHIN,
};
use tekup_harness::chaos::{ChaosError, Proxy, ProxyStats, Toxic};

#[tokio::test]
async fn data_flows_both_ways_and_is_counted() {
    let server = Server::echo().await;
    let proxy = proxy_to(&server).await;
    assert_eq!(proxy.upstream(), server.addr);
    assert!(proxy.addr().ip().is_loopback());
    let mut client = connect(&proxy).await;
    round_trip(&mut client, b"hello").await;
    round_trip(&mut client, &pattern(100_000)).await;
    assert!(
        eventually(|| proxy.stats()
            == ProxyStats {
                accepted: 1,
                active: 1,
                bytes_upstream: 100_005,
                bytes_downstream: 100_005,
            })
        .await,
        "{:?}",
        proxy.stats()
    );
    drop(client);
    assert!(
        eventually(|| proxy.stats().active == 0).await,
        "the closed connection is no longer active: {:?}",
        proxy.stats()
    );
}

#[tokio::test]
async fn latency_delays_new_data_on_open_connections_and_removing_it_restores_flow() {
    let server = Server::echo().await;
    let proxy = proxy_to(&server).await;
    let mut client = connect(&proxy).await;
    let plain = round_trip(&mut client, b"ping").await;

    proxy
        .add(Toxic::latency(ms(300), Duration::ZERO))
        .expect("adds");
    let down = round_trip(&mut client, b"ping").await;
    assert!(down >= ms(300), "downstream latency 300 ms, took {down:?}");

    proxy
        .add(Toxic::latency(ms(200), Duration::ZERO).upstream())
        .expect("adds");
    let both = round_trip(&mut client, b"ping").await;
    assert!(both >= ms(500), "300 ms + 200 ms, took {both:?}");

    proxy.remove("latency_downstream").expect("removes");
    proxy.remove("latency_upstream").expect("removes");
    assert!(proxy.toxics().is_empty());
    let after = round_trip(&mut client, b"ping").await;
    assert!(
        after < ms(250),
        "no latency once removed: took {after:?} (before any toxic: {plain:?})"
    );
}

#[tokio::test]
async fn jitter_spreads_latency_around_its_value() {
    let server = Server::echo().await;
    let proxy = proxy_to(&server).await;
    proxy.add(Toxic::latency(ms(200), ms(100))).expect("adds");
    let mut client = connect(&proxy).await;
    let mut took = Vec::new();
    for _ in 0..8 {
        took.push(round_trip(&mut client, b"ping").await);
    }
    let (min, max) = (
        *took.iter().min().expect("some"),
        *took.iter().max().expect("some"),
    );
    assert!(min >= ms(100), "never below 200 - 100 ms: {took:?}");
    assert!(max < ms(1_500), "about 200 + 100 ms at most: {took:?}");
    assert!(max - min >= ms(10), "jitter varies the delay: {took:?}");
}

#[tokio::test]
async fn bandwidth_limits_throughput() {
    let payload = pattern(100_000);
    let server = Server::source(payload.clone(), false).await;
    let proxy = proxy_to(&server).await;

    let mut client = connect(&proxy).await;
    let free = read_to_end(&mut client).await;
    assert_eq!(free.bytes, payload);

    proxy.add(Toxic::bandwidth(50)).expect("adds");
    let mut client = connect(&proxy).await;
    let limited = read_to_end(&mut client).await;
    assert_eq!(limited.bytes, payload, "every byte arrives, slowly");
    // 100 KB at 50 KB/s: 2 s.
    assert!(
        limited.ended_after >= ms(1_600) && limited.ended_after < ms(6_000),
        "100 KB at 50 KB/s took {:?} (unlimited: {:?})",
        limited.ended_after,
        free.ended_after
    );
}

#[tokio::test]
async fn timeout_stops_data_and_closes_after_its_time() {
    let server = Server::echo().await;
    let proxy = proxy_to(&server).await;
    let mut client = connect(&proxy).await;
    round_trip(&mut client, b"before").await;

    let added = Instant::now();
    proxy.add(Toxic::timeout(ms(500)).upstream()).expect("adds");
    client.write_all(b"ping").await.expect("writes");
    let got = read_to_end(&mut client).await;
    assert!(got.bytes.is_empty(), "no data passes: {:?}", got.bytes);
    assert!(got.end.is_ok(), "closed, not reset: {:?}", got.end);
    let closed = added.elapsed();
    assert!(
        closed >= ms(450) && closed < ms(5_000),
        "closed {closed:?} after the 500 ms timeout was added"
    );

    // A connection that stays idle is closed all the same.
    let mut idle = connect(&proxy).await;
    let got = read_to_end(&mut idle).await;
    assert!(got.ended_after >= ms(450), "{:?}", got.ended_after);
}

#[tokio::test]
async fn a_timeout_of_zero_holds_data_until_it_is_removed() {
    let server = Server::echo().await;
    let proxy = proxy_to(&server).await;
    proxy.add(Toxic::timeout(Duration::ZERO)).expect("adds");
    let mut client = connect(&proxy).await;
    client.write_all(b"held").await.expect("writes");
    let mut back = [0u8; 4];
    let stalled = tokio::time::timeout(ms(500), client.read_exact(&mut back)).await;
    assert!(stalled.is_err(), "nothing comes back while the toxic is on");

    proxy.remove("timeout_downstream").expect("removes");
    tokio::time::timeout(WITHIN, client.read_exact(&mut back))
        .await
        .expect("the held data comes once removed")
        .expect("reads");
    assert_eq!(&back, b"held");
    round_trip(&mut client, b"flows again").await;
}

#[tokio::test]
async fn reset_peer_gives_the_client_a_connection_reset() {
    let server = Server::echo().await;
    let proxy = proxy_to(&server).await;
    proxy.add(Toxic::reset_peer(ms(100))).expect("adds");
    let mut client = connect(&proxy).await;
    client.write_all(b"ping").await.expect("writes");
    let got = read_to_end(&mut client).await;
    assert!(got.bytes.is_empty(), "{:?}", got.bytes);
    let kind = got.end.as_ref().map_err(std::io::Error::kind);
    assert_eq!(kind, Err(ErrorKind::ConnectionReset), "{:?}", got.end);
    assert!(got.ended_after >= ms(100), "{:?}", got.ended_after);
}

#[tokio::test]
async fn slicer_delivers_the_same_bytes_in_several_reads() {
    let payload = pattern(20_000);
    let server = Server::source(payload.clone(), false).await;
    let proxy = proxy_to(&server).await;
    proxy.add(Toxic::slicer(1_000, 200, ms(10))).expect("adds");
    let mut client = connect(&proxy).await;
    let got = read_to_end(&mut client).await;
    assert_eq!(got.bytes, payload, "the same bytes, in order");
    assert!(
        got.reads >= 5,
        "about 20 slices of 1,000 ± 200 bytes, 10 ms apart: {} reads",
        got.reads
    );
    assert!(got.ended_after >= ms(150), "{:?}", got.ended_after);
}

#[tokio::test]
async fn limit_data_closes_after_that_many_bytes() {
    let payload = pattern(5_000);
    // The server keeps its end open: the close comes from the toxic.
    let server = Server::source(payload.clone(), true).await;
    let proxy = proxy_to(&server).await;
    proxy.add(Toxic::limit_data(1_000)).expect("adds");
    let mut client = connect(&proxy).await;
    let got = read_to_end(&mut client).await;
    assert!(got.end.is_ok(), "{:?}", got.end);
    assert_eq!(got.bytes, payload[..1_000], "exactly the first 1,000 bytes");
}

#[tokio::test]
async fn slow_close_delays_the_end_of_the_stream() {
    let server = Server::source(b"bye".to_vec(), false).await;
    let proxy = proxy_to(&server).await;
    proxy.add(Toxic::slow_close(ms(500))).expect("adds");
    let mut client = connect(&proxy).await;
    let mut first = [0u8; 3];
    tokio::time::timeout(ms(400), client.read_exact(&mut first))
        .await
        .expect("the data is not delayed")
        .expect("reads");
    assert_eq!(&first, b"bye");
    let rest = read_to_end(&mut client).await;
    assert!(rest.bytes.is_empty() && rest.end.is_ok(), "{rest:?}");
    assert!(
        rest.ended_after >= ms(300),
        "the close came {:?} after the data, 500 ms late",
        rest.ended_after
    );
}

#[tokio::test]
async fn down_closes_open_connections_and_refuses_new_ones_until_up_again() {
    let server = Server::echo().await;
    let proxy = proxy_to(&server).await;
    let mut open = connect(&proxy).await;
    round_trip(&mut open, b"ping").await;

    proxy.disable().expect("disables");
    assert!(!proxy.is_enabled());
    let got = read_to_end(&mut open).await;
    assert!(got.bytes.is_empty(), "{got:?}");
    let refused = tokio::time::timeout(WITHIN, TcpStream::connect(proxy.addr()))
        .await
        .expect("connecting ends at once")
        .map(|_| ());
    assert_eq!(
        refused.map_err(|e| e.kind()),
        Err(ErrorKind::ConnectionRefused),
        "a down link refuses connections"
    );
    assert!(eventually(|| proxy.stats().active == 0).await);

    proxy.enable().expect("enables");
    assert!(proxy.is_enabled());
    let mut again = connect(&proxy).await;
    round_trip(&mut again, b"back on the same port").await;
    proxy.disable().expect("disables");
    proxy.reset().expect("reset enables too");
    round_trip(&mut connect(&proxy).await, b"reset").await;
}

#[tokio::test]
async fn toxicity_zero_never_applies_and_one_half_applies_to_some_connections() {
    let server = Server::echo().await;
    let proxy = proxy_to(&server).await;
    proxy
        .add(Toxic::latency(ms(400), Duration::ZERO).toxicity(0.0))
        .expect("adds");
    let never = join_all((0..10).map(|_| timed_connection(&proxy))).await;
    assert!(
        never.iter().all(|t| *t < ms(300)),
        "toxicity 0 never applies: {never:?}"
    );

    proxy
        .update(Toxic::latency(ms(400), Duration::ZERO).toxicity(0.5))
        .expect("updates");
    let half = join_all((0..30).map(|_| timed_connection(&proxy))).await;
    let slowed = half.iter().filter(|t| **t >= ms(400)).count();
    assert!(
        slowed > 0 && slowed < half.len(),
        "toxicity 0.5 applies to some of 30 connections, not all: {slowed} slowed ({half:?})"
    );
}

async fn timed_connection(proxy: &Proxy) -> Duration {
    let mut client = connect(proxy).await;
    round_trip(&mut client, b"ping").await
}

#[tokio::test]
async fn bad_changes_are_refused_with_the_reason() {
    let server = Server::echo().await;
    let proxy = proxy_to(&server).await;
    proxy.add(Toxic::limit_data(10)).expect("adds");
    let duplicate = proxy.add(Toxic::limit_data(20)).expect_err("same name");
    assert!(matches!(duplicate, ChaosError::DuplicateToxic { .. }));
    assert!(
        duplicate
            .to_string()
            .contains("failed to add toxic `limit_data_downstream` to proxy `test`: it already has a toxic of that name"),
        "{duplicate}"
    );
    let unknown = proxy.remove("nope").expect_err("unknown").to_string();
    assert_eq!(
        unknown,
        "proxy `test` has no toxic `nope`; its toxics: limit_data_downstream"
    );
    assert!(proxy.update(Toxic::bandwidth(5)).is_err());
    let invalid = proxy
        .add(Toxic::slicer(10, 10, Duration::ZERO))
        .expect_err("invalid")
        .to_string();
    assert!(
        invalid.starts_with("invalid toxic `slicer_downstream` for proxy `test`: a slicer needs"),
        "{invalid}"
    );
    let toxicity = proxy
        .add(Toxic::bandwidth(5).toxicity(f64::NAN))
        .expect_err("not a probability")
        .to_string();
    assert!(toxicity.contains("is not a probability"), "{toxicity}");
    assert_eq!(proxy.toxics().len(), 1, "nothing was added by the errors");
}

#[tokio::test]
async fn an_upstream_restarted_on_the_same_port_is_reached_again() {
    let server = Server::echo().await;
    let addr = server.addr;
    let proxy = proxy_to(&server).await;
    let mut client = connect(&proxy).await;
    round_trip(&mut client, b"ping").await;

    server.stop().await;
    let got = read_to_end(&mut client).await;
    assert!(
        got.bytes.is_empty(),
        "the proxied connection ends with the upstream"
    );
    // While the upstream is away, clients are accepted and closed.
    let mut refused = connect(&proxy).await;
    assert!(read_to_end(&mut refused).await.bytes.is_empty());

    let _again = Server::start_on(addr, crate::common::echo).await;
    round_trip(&mut connect(&proxy).await, b"back").await;
}

#[tokio::test]
async fn shutting_down_closes_the_port_and_every_connection() {
    let server = Server::echo().await;
    let proxy = proxy_to(&server).await;
    let addr = proxy.addr();
    let mut client = connect(&proxy).await;
    round_trip(&mut client, b"ping").await;
    proxy.shutdown().await;
    let got = read_to_end(&mut client).await;
    assert!(got.bytes.is_empty());
    assert!(got.ended_after < ms(1_000), "closed at once: {got:?}");
    assert_eq!(
        TcpStream::connect(addr)
            .await
            .map(|_| ())
            .map_err(|e| e.kind()),
        Err(ErrorKind::ConnectionRefused)
    );

    // Dropping refuses new connections at once; open ones end soon after.
    let proxy = proxy_to(&server).await;
    let addr = proxy.addr();
    let mut client = connect(&proxy).await;
    round_trip(&mut client, b"ping").await;
    drop(proxy);
    assert_eq!(
        TcpStream::connect(addr)
            .await
            .map(|_| ())
            .map_err(|e| e.kind()),
        Err(ErrorKind::ConnectionRefused)
    );
    assert!(read_to_end(&mut client).await.bytes.is_empty());
}
