//! The socket layer under the mocks: a listener that serves plain TCP or TLS
//! and hands out connections that can be reset on purpose.
//!
//! This is the part wiremock cannot do: a `Reset` fault must send a TCP RST
//! (`SO_LINGER` 0, then close), which needs the socket; axum's [`Listener`]
//! trait lets us own the sockets while keeping axum's HTTP/1, HTTP/2 and
//! WebSocket upgrade handling.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// How long a TLS handshake may take before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Per-connection switch used by the `Reset` fault.
#[derive(Debug, Default)]
pub(crate) struct ConnCtl {
    reset: AtomicBool,
}

impl ConnCtl {
    /// Makes the next read or write fail and the close send an RST.
    pub(crate) fn reset(&self) {
        self.reset.store(true, Ordering::SeqCst);
    }
}

/// A connection accepted by [`MockListener`].
#[derive(Debug)]
pub(crate) struct MockIo {
    inner: Inner,
    ctl: Arc<ConnCtl>,
    lingering: bool,
}

#[derive(Debug)]
enum Inner {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl MockIo {
    fn tcp(&self) -> &TcpStream {
        match &self.inner {
            Inner::Plain(s) => s,
            Inner::Tls(s) => s.get_ref().0,
        }
    }

    /// If a reset was asked for: arm `SO_LINGER` 0 and report the error.
    fn check_reset(&mut self) -> io::Result<()> {
        if !self.ctl.reset.load(Ordering::Relaxed) {
            return Ok(());
        }
        if !self.lingering {
            self.lingering = true;
            // Closing with linger 0 makes the kernel send RST instead of FIN.
            let _ = socket2::SockRef::from(self.tcp()).set_linger(Some(Duration::ZERO));
        }
        Err(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "connection reset by fault injection",
        ))
    }
}

impl AsyncRead for MockIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Err(e) = self.check_reset() {
            return Poll::Ready(Err(e));
        }
        match &mut self.inner {
            Inner::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Inner::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for MockIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Err(e) = self.check_reset() {
            return Poll::Ready(Err(e));
        }
        match &mut self.inner {
            Inner::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Inner::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if let Err(e) = self.check_reset() {
            return Poll::Ready(Err(e));
        }
        match &mut self.inner {
            Inner::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Inner::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.inner {
            Inner::Plain(s) => s.is_write_vectored(),
            Inner::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Err(e) = self.check_reset() {
            return Poll::Ready(Err(e));
        }
        match &mut self.inner {
            Inner::Plain(s) => Pin::new(s).poll_flush(cx),
            Inner::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.inner {
            Inner::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Inner::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// A bound listener serving plain TCP or TLS (handshakes run off the accept loop).
#[derive(Debug)]
pub(crate) struct MockListener {
    addr: SocketAddr,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Plain(TcpListener),
    Tls {
        rx: mpsc::Receiver<(MockIo, SocketAddr)>,
        task: JoinHandle<()>,
    },
}

impl Drop for MockListener {
    fn drop(&mut self) {
        if let Kind::Tls { task, .. } = &self.kind {
            task.abort();
        }
    }
}

impl MockListener {
    pub(crate) fn new(listener: TcpListener, tls: Option<TlsAcceptor>) -> io::Result<Self> {
        let addr = listener.local_addr()?;
        let kind = match tls {
            None => Kind::Plain(listener),
            Some(acceptor) => {
                let (tx, rx) = mpsc::channel(64);
                let task = tokio::spawn(accept_tls(listener, acceptor, tx));
                Kind::Tls { rx, task }
            }
        };
        Ok(Self { addr, kind })
    }
}

async fn accept_tls(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    tx: mpsc::Sender<(MockIo, SocketAddr)>,
) {
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(pair) => pair,
            Err(e) => {
                tracing::debug!("accept failed: {e}");
                tokio::task::yield_now().await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    let io = MockIo {
                        inner: Inner::Tls(Box::new(tls)),
                        ctl: Arc::default(),
                        lingering: false,
                    };
                    let _ = tx.send((io, remote)).await;
                }
                Ok(Err(e)) => tracing::debug!(%remote, "TLS handshake failed: {e}"),
                Err(_) => tracing::debug!(%remote, "TLS handshake timed out"),
            }
        });
    }
}

impl Listener for MockListener {
    type Io = MockIo;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match &mut self.kind {
            Kind::Plain(listener) => loop {
                match TcpListener::accept(listener).await {
                    Ok((stream, remote)) => {
                        let _ = stream.set_nodelay(true);
                        let io = MockIo {
                            inner: Inner::Plain(stream),
                            ctl: Arc::default(),
                            lingering: false,
                        };
                        return (io, remote);
                    }
                    Err(e) => {
                        tracing::debug!("accept failed: {e}");
                        tokio::task::yield_now().await;
                    }
                }
            },
            Kind::Tls { rx, .. } => match rx.recv().await {
                Some(pair) => pair,
                // The accept task is gone (only on shutdown): never yield again.
                None => std::future::pending().await,
            },
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.addr)
    }
}

/// Connection info available to handlers: peer address and the reset switch.
#[derive(Debug, Clone)]
pub(crate) struct ConnInfo {
    #[expect(dead_code, reason = "kept for logging and future per-peer faults")]
    pub(crate) remote: SocketAddr,
    pub(crate) ctl: Arc<ConnCtl>,
}

impl Connected<IncomingStream<'_, MockListener>> for ConnInfo {
    fn connect_info(stream: IncomingStream<'_, MockListener>) -> Self {
        Self {
            remote: *stream.remote_addr(),
            ctl: stream.io().ctl.clone(),
        }
    }
}
