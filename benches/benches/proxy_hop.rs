//! What the fault proxy of a link costs when no toxic is on: the latency it
//! adds per request on the loopback, beside the same requests sent
//! directly, measured in the same run in interleaved rounds.
//!
//! `cargo bench -p tekup-benches --bench proxy_hop` (`BENCH_QUICK=1` for
//! fewer requests).
//!
//! - *kept connection*: 64-byte request, 64-byte echo, on one open
//!   connection (how the services use their pools and Redis connections);
//! - *connection per request*: connect, 64-byte round trip, close (the
//!   proxy also connects to the upstream);
//! - *bulk*: 16 MiB one way and back, MB/s.
//!
//! "added by the hop" is the proxied figure minus the direct one; at the
//! 99th percentile both are scheduling noise on a busy machine, so that
//! difference can even come out negative. On the project's 2-core machine
//! (two runs): +29-32 µs at the median on a kept connection (about 26 µs
//! direct, 58 µs proxied), +140 µs per new connection (the proxy connects
//! to the upstream), bulk 270-310 MB/s against 390-475 MB/s.

use std::io::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tekup_harness::chaos::Proxy;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

const ROUNDS: usize = 5;

fn main() {
    let quick = tekup_benches::quick();
    let (kept_n, fresh_n, bulk) = if quick {
        (2_000, 200, 4 << 20)
    } else {
        (20_000, 2_000, 16 << 20)
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async move {
        let echo = echo_server().await;
        let proxy = Proxy::start("bench", echo).await.expect("proxy starts");
        let targets = [("direct", echo), ("through the proxy", proxy.addr())];

        // Warm-up, not measured.
        for (_, addr) in targets {
            kept(addr, 500).await;
            fresh(addr, 50).await;
        }
        let mut kept_lat: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
        let mut fresh_lat: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
        let mut bulk_rate: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
        for _ in 0..ROUNDS {
            for (i, (_, addr)) in targets.iter().enumerate() {
                kept_lat[i].extend(kept(*addr, kept_n / ROUNDS).await);
                fresh_lat[i].extend(fresh(*addr, fresh_n / ROUNDS).await);
                bulk_rate[i].push(bulk_mb_per_s(*addr, bulk).await);
            }
        }

        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "fault proxy hop, no toxic, loopback, {ROUNDS} interleaved rounds, same run\n"
        );
        let _ = writeln!(
            out,
            "{:<26} {:<18} {:>9} {:>9} {:>9} {:>10}",
            "", "target", "p50 µs", "p99 µs", "mean µs", "requests"
        );
        for (label, lat) in [
            ("kept connection (64 B)", &mut kept_lat),
            ("connection per request", &mut fresh_lat),
        ] {
            for (i, (name, _)) in targets.iter().enumerate() {
                let s = summary(&mut lat[i]);
                let _ = writeln!(
                    out,
                    "{label:<26} {name:<18} {:>9.1} {:>9.1} {:>9.1} {:>10}",
                    s.p50, s.p99, s.mean, s.n
                );
            }
            let direct = summary(&mut lat[0]);
            let proxied = summary(&mut lat[1]);
            let _ = writeln!(
                out,
                "{label:<26} {:<18} {:>9.1} {:>9.1} {:>9.1}\n",
                "added by the hop",
                proxied.p50 - direct.p50,
                proxied.p99 - direct.p99,
                proxied.mean - direct.mean
            );
        }
        for (i, (name, _)) in targets.iter().enumerate() {
            let mut rates = bulk_rate[i].clone();
            rates.sort_by(f64::total_cmp);
            let _ = writeln!(
                out,
                "bulk {} MiB echoed          {name:<18} {:>9.0} MB/s (median of {ROUNDS})",
                bulk >> 20,
                rates[rates.len() / 2]
            );
        }
        drop(proxy);
    });
}

async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = socket.set_nodelay(true);
                let (mut r, mut w) = socket.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

async fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).await.expect("connects");
    stream.set_nodelay(true).expect("nodelay");
    stream
}

async fn round_trip(stream: &mut TcpStream, buf: &mut [u8; 64]) {
    stream.write_all(&[7u8; 64]).await.expect("writes");
    stream.read_exact(buf).await.expect("reads the echo");
}

async fn kept(addr: SocketAddr, n: usize) -> Vec<Duration> {
    let mut stream = connect(addr).await;
    let mut buf = [0u8; 64];
    let mut lat = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        round_trip(&mut stream, &mut buf).await;
        lat.push(started.elapsed());
    }
    lat
}

async fn fresh(addr: SocketAddr, n: usize) -> Vec<Duration> {
    let mut buf = [0u8; 64];
    let mut lat = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let mut stream = connect(addr).await;
        round_trip(&mut stream, &mut buf).await;
        lat.push(started.elapsed());
    }
    lat
}

async fn bulk_mb_per_s(addr: SocketAddr, bytes: usize) -> f64 {
    let stream = connect(addr).await;
    let (mut r, mut w) = stream.into_split();
    let started = Instant::now();
    let writer = tokio::spawn(async move {
        let chunk = vec![1u8; 64 * 1024];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(chunk.len());
            w.write_all(&chunk[..n]).await.expect("writes");
            left -= n;
        }
        w
    });
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0;
    while got < bytes {
        let n = r.read(&mut buf).await.expect("reads");
        assert!(n > 0, "the echo ended early");
        got += n;
    }
    let _w = writer.await.expect("writer");
    bytes as f64 / started.elapsed().as_secs_f64() / 1e6
}

struct Summary {
    p50: f64,
    p99: f64,
    mean: f64,
    n: usize,
}

/// Percentiles in microseconds.
fn summary(lat: &mut [Duration]) -> Summary {
    lat.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let at = |q: f64| us(lat[((lat.len() - 1) as f64 * q) as usize]);
    Summary {
        p50: at(0.5),
        p99: at(0.99),
        mean: lat.iter().map(|d| us(*d)).sum::<f64>() / lat.len() as f64,
        n: lat.len(),
    }
}
