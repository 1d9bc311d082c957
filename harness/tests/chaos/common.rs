//! Servers and clients for the proxy tests.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use tekup_harness::chaos::Proxy;

/// A bound for waits that should end much sooner.
pub(crate) const WITHIN: Duration = Duration::from_secs(10);

/// A TCP server run by `serve` per connection until it is stopped (or
/// dropped): the listener closes and every connection with it.
pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    stop: CancellationToken,
    accepting: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    pub(crate) async fn start<F, Fut>(serve: F) -> Self
    where
        F: Fn(TcpStream) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        Self::start_on("127.0.0.1:0".parse().expect("addr"), serve).await
    }

    pub(crate) async fn start_on<F, Fut>(addr: SocketAddr, serve: F) -> Self
    where
        F: Fn(TcpStream) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind(addr).await.expect("server binds");
        let addr = listener.local_addr().expect("server addr");
        let stop = CancellationToken::new();
        let token = stop.clone();
        let accepting = tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    () = token.cancelled() => return,
                    accepted = listener.accept() => accepted,
                };
                let Ok((socket, _)) = accepted else { continue };
                let token = token.clone();
                let conn = serve(socket);
                tokio::spawn(async move {
                    tokio::select! {
                        () = token.cancelled() => {}
                        () = conn => {}
                    }
                });
            }
        });
        Self {
            addr,
            stop,
            accepting: Some(accepting),
        }
    }

    /// Echoes what it reads.
    pub(crate) async fn echo() -> Self {
        Self::start(echo).await
    }

    /// Sends `payload` on every connection, then closes it (or, with
    /// `keep_open`, leaves it open until the client closes).
    pub(crate) async fn source(payload: Vec<u8>, keep_open: bool) -> Self {
        Self::start(move |mut socket| {
            let payload = payload.clone();
            async move {
                if socket.write_all(&payload).await.is_err() {
                    return;
                }
                if keep_open {
                    let mut sink = [0u8; 1024];
                    while matches!(socket.read(&mut sink).await, Ok(n) if n > 0) {}
                }
            }
        })
        .await
    }

    /// Closes its connections and waits until its port is closed.
    pub(crate) async fn stop(mut self) {
        self.stop.cancel();
        if let Some(accepting) = self.accepting.take() {
            let _ = accepting.await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub(crate) async fn echo(mut socket: TcpStream) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match socket.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if socket.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

pub(crate) async fn proxy_to(server: &Server) -> Proxy {
    Proxy::start("test", server.addr)
        .await
        .expect("proxy starts")
}

pub(crate) async fn connect(proxy: &Proxy) -> TcpStream {
    let stream = tokio::time::timeout(WITHIN, TcpStream::connect(proxy.addr()))
        .await
        .expect("connecting ends within 10 s")
        .expect("connects to the proxy");
    stream.set_nodelay(true).expect("nodelay");
    stream
}

/// Sends `message` and waits for it to come back; the time it took.
pub(crate) async fn round_trip(stream: &mut TcpStream, message: &[u8]) -> Duration {
    let started = Instant::now();
    stream.write_all(message).await.expect("writes");
    let mut back = vec![0u8; message.len()];
    tokio::time::timeout(WITHIN, stream.read_exact(&mut back))
        .await
        .expect("the echo comes back within 10 s")
        .expect("reads the echo");
    assert_eq!(back, message, "the echo is what was sent");
    started.elapsed()
}

/// How a stream ended, as the client saw it.
#[derive(Debug)]
pub(crate) struct Received {
    pub(crate) bytes: Vec<u8>,
    pub(crate) reads: usize,
    /// `Ok(())` for EOF, else the read error.
    pub(crate) end: std::io::Result<()>,
    /// When the end came, from the call.
    pub(crate) ended_after: Duration,
}

/// Reads until EOF or an error (at most `WITHIN`).
pub(crate) async fn read_to_end(stream: &mut TcpStream) -> Received {
    let started = Instant::now();
    let mut bytes = Vec::new();
    let mut reads = 0;
    let mut buf = vec![0u8; 64 * 1024];
    let end = loop {
        match tokio::time::timeout(WITHIN, stream.read(&mut buf)).await {
            Err(_) => panic!(
                "the stream did not end within {WITHIN:?} ({} bytes read)",
                bytes.len()
            ),
            Ok(Ok(0)) => break Ok(()),
            Ok(Ok(n)) => {
                reads += 1;
                bytes.extend_from_slice(&buf[..n]);
            }
            Ok(Err(e)) => break Err(e),
        }
    };
    Received {
        bytes,
        reads,
        end,
        ended_after: started.elapsed(),
    }
}

/// Polls `condition` until it holds or `WITHIN` passes.
pub(crate) async fn eventually(mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + WITHIN;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    condition()
}

pub(crate) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// `n` bytes of a recognisable pattern.
pub(crate) fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}
