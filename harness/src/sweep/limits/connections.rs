//! Connections: a slow header and a silent connection are closed by the
//! server within the stated bounds.
//!
//! Each probe is a raw TCP connection (the HTTP clients would finish the
//! header at once). The sweep waits for the server to end the connection
//! (EOF, or a reset) with a deadline of the bound plus [`super::MARGIN`];
//! it never sleeps and then looks.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::super::{Class, ClassReport};
use super::{secs, MARGIN};
use crate::contract::Limits;

/// How often the slow client sends one more byte of its header.
const TRICKLE: Duration = Duration::from_millis(500);

/// The header a slow client starts and never finishes.
const SLOW_START: &[u8] = b"GET /health HTTP/1.1\r\nHost: sweep\r\n";
const SLOW_HEADER: &[u8] = b"X-Slow-Header: one byte at a time and never a blank line";

pub(super) async fn check(limits: &Limits, services: &[(String, String)]) -> ClassReport {
    let probes = services.iter().flat_map(|(service, url)| {
        [
            probe(service, url, Probe::SlowHeader, limits.header_read_timeout),
            probe(service, url, Probe::Idle, limits.idle_timeout),
        ]
    });
    let parts = futures::future::join_all(probes).await;
    let mut report = ClassReport::new(Class::Limits);
    for part in parts {
        super::merge(&mut report, part);
    }
    report
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Probe {
    SlowHeader,
    Idle,
}

/// How a probe's connection ended.
enum Ended {
    /// The server closed it.
    Closed,
    /// Still open at the deadline.
    Open,
}

async fn probe(service: &str, url: &str, kind: Probe, bound: Duration) -> ClassReport {
    let mut report = ClassReport::new(Class::Limits);
    let (limit, surface) = match kind {
        Probe::SlowHeader => ("header-read-timeout", "connection (slow header)"),
        Probe::Idle => ("idle-timeout", "connection (idle)"),
    };
    let operation = format!("{service} {surface}");
    let address = match address(url) {
        Ok(address) => address,
        Err(why) => {
            report
                .notes
                .push(format!("{service}: {limit} not checked: {why}"));
            return report;
        }
    };
    report.operations.insert(operation.clone());
    report.cases += 1;
    let mut stream = match TcpStream::connect(&address).await {
        Ok(stream) => stream,
        Err(e) => {
            report.found(
                operation,
                format!("could not connect to {}:{}", address.0, address.1),
                e.to_string(),
                None,
            );
            return report;
        }
    };
    let deadline = bound + MARGIN;
    let ended = match kind {
        Probe::SlowHeader => slow_header(&mut stream, deadline).await,
        Probe::Idle => until_closed(&mut stream, deadline).await,
    };
    if let Ended::Open = ended {
        let how = match kind {
            Probe::SlowHeader => format!(
                "a request header sent one byte every {} and never finished",
                secs(TRICKLE)
            ),
            Probe::Idle => "a connection that sent nothing".to_owned(),
        };
        let shell = match kind {
            Probe::SlowHeader => format!(
                "(printf 'GET /health HTTP/1.1\\r\\nHost: x\\r\\nX-Slow: '; while sleep 1; do printf a; done) | nc {} {}",
                address.0, address.1
            ),
            Probe::Idle => format!("nc {} {} </dev/null -q -1 (send nothing)", address.0, address.1),
        };
        report.found(
            operation,
            format!(
                "{how} was still open after {} ({limit} {})",
                secs(deadline),
                secs(bound)
            ),
            format!(
                "expected the server to close it within {limit} ({}) plus a margin of {}; to reproduce: {shell}",
                secs(bound),
                secs(MARGIN)
            ),
            None,
        );
    }
    report
}

/// Host and port of an `http://` base URL.
fn address(url: &str) -> Result<(String, u16), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    if parsed.scheme() != "http" {
        return Err(format!(
            "`{url}` is not plain http (the probes speak raw HTTP/1.1 over TCP)"
        ));
    }
    let host = parsed
        .host_str()
        .ok_or_else(|| format!("`{url}` names no host"))?;
    let port = parsed
        .port_or_known_default()
        .ok_or_else(|| format!("`{url}` names no port"))?;
    Ok((host.trim_matches(['[', ']']).to_owned(), port))
}

/// Reads until the server ends the connection or `within` passes.
async fn until_closed(stream: &mut TcpStream, within: Duration) -> Ended {
    let mut buf = [0u8; 4096];
    let read_to_end = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                // A 408 or another answer before the close: keep reading.
                Ok(_) => {}
            }
        }
    };
    match tokio::time::timeout(within, read_to_end).await {
        Ok(()) => Ended::Closed,
        Err(_) => Ended::Open,
    }
}

/// Starts a request header, then sends one byte of it every [`TRICKLE`]
/// (never the blank line that ends it) until the server ends the
/// connection or `within` passes.
async fn slow_header(stream: &mut TcpStream, within: Duration) -> Ended {
    let deadline = Instant::now() + within;
    if stream.write_all(SLOW_START).await.is_err() {
        return Ended::Closed;
    }
    let (mut reader, mut writer) = stream.split();
    let mut buf = [0u8; 4096];
    let mut trickle = tokio::time::interval(TRICKLE);
    let mut next = SLOW_HEADER.iter().cycle();
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => return Ended::Open,
            read = reader.read(&mut buf) => match read {
                Ok(0) | Err(_) => return Ended::Closed,
                Ok(_) => {}
            },
            _ = trickle.tick() => {
                let byte = [*next.next().expect("cycles")];
                if writer.write_all(&byte).await.is_err() {
                    return Ended::Closed;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_come_from_plain_http_urls() {
        assert_eq!(
            address("http://127.0.0.1:4100"),
            Ok(("127.0.0.1".into(), 4100))
        );
        assert_eq!(address("http://[::1]:80/"), Ok(("::1".into(), 80)));
        assert_eq!(address("http://gateway"), Ok(("gateway".into(), 80)));
        let err = address("https://api.example.test").unwrap_err();
        assert!(err.contains("not plain http"), "{err}");
    }

    #[tokio::test]
    async fn a_server_that_never_closes_is_reported_open_at_the_deadline() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds");
        let at = listener.local_addr().expect("address");
        let keep = tokio::spawn(async move {
            let held = listener.accept().await;
            std::future::pending::<()>().await;
            drop(held);
        });
        let mut stream = TcpStream::connect(at).await.expect("connects");
        let ended = slow_header(&mut stream, Duration::from_millis(300)).await;
        assert!(matches!(ended, Ended::Open));
        keep.abort();

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds");
        let at = listener.local_addr().expect("address");
        tokio::spawn(async move {
            let (socket, _) = listener.accept().await.expect("accepts");
            drop(socket);
        });
        let mut stream = TcpStream::connect(at).await.expect("connects");
        let ended = until_closed(&mut stream, Duration::from_secs(15)).await;
        assert!(matches!(ended, Ended::Closed));
    }
}
