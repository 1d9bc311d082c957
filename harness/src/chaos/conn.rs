//! One proxied connection.
//!
//! A connection is two directions (upstream: client to server; downstream:
//! server to client). Each direction is a *reader* that timestamps the
//! chunks it reads and queues them (bounded, so a stalled direction pushes
//! back on its sender through TCP), and a *writer* ([`super::writer`]) that
//! passes every chunk through the toxics of its stream and writes what
//! comes out. Reading ahead is what keeps latency per chunk: pipelined
//! requests each wait `latency` from their arrival, not one after the
//! other.
//!
//! Everything of a connection runs inside its one task, so dropping the
//! task (proxy disabled or dropped) closes both sockets.

use std::future::Future;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use socket2::SockRef;
use tokio::io::AsyncReadExt as _;
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::proxy::Shared;
use super::toxic::Stream;
use super::writer::Writer;

/// How long connecting to the upstream may take before the client is closed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Read size.
const CHUNK: usize = 32 * 1024;
/// Chunks a direction reads ahead of its writer.
const READ_AHEAD: usize = 16;

/// What a reader hands its writer.
pub(super) enum Item {
    Data { at: Instant, bytes: Bytes },
    Eof,
    Broken,
}

/// How a direction, then the connection, ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    /// The sender finished cleanly; its FIN was passed on.
    Eof,
    /// Close both sockets.
    Close,
    /// Reset both sockets (RST).
    Reset,
}

/// Serves one accepted client until it, the upstream, a toxic or `epoch`
/// ends the connection.
pub(super) async fn serve(shared: &Shared, mut client: TcpStream, epoch: CancellationToken) {
    let connect = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(shared.upstream));
    let mut server = tokio::select! {
        () = epoch.cancelled() => return,
        connected = connect => match connected {
            Ok(Ok(server)) => server,
            Ok(Err(e)) => {
                tracing::debug!(proxy = %shared.name, upstream = %shared.upstream, error = %e, "upstream refused; closing the client");
                return;
            }
            Err(_) => {
                tracing::debug!(proxy = %shared.name, upstream = %shared.upstream, "upstream did not answer; closing the client");
                return;
            }
        },
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let opened = Instant::now();
    let end = {
        let (client_read, client_write) = client.split();
        let (server_read, server_write) = server.split();
        let up = direction(shared, Stream::Upstream, client_read, server_write, opened);
        let down = direction(
            shared,
            Stream::Downstream,
            server_read,
            client_write,
            opened,
        );
        both(up, down, &epoch).await
    };
    if end == Outcome::Reset {
        // Closing with a zero linger time sends RST instead of FIN.
        for socket in [&client, &server] {
            let _ = SockRef::from(socket).set_linger(Some(Duration::ZERO));
        }
    }
}

/// Runs both directions until both ended cleanly, one closes or resets the
/// connection, or `epoch` is cancelled.
async fn both(
    up: impl Future<Output = Outcome>,
    down: impl Future<Output = Outcome>,
    epoch: &CancellationToken,
) -> Outcome {
    tokio::pin!(up, down);
    let (mut up_open, mut down_open) = (true, true);
    loop {
        let outcome = tokio::select! {
            () = epoch.cancelled() => return Outcome::Close,
            outcome = &mut up, if up_open => {
                up_open = false;
                outcome
            }
            outcome = &mut down, if down_open => {
                down_open = false;
                outcome
            }
        };
        if outcome != Outcome::Eof || !(up_open || down_open) {
            return outcome;
        }
    }
}

async fn direction(
    shared: &Shared,
    stream: Stream,
    from: ReadHalf<'_>,
    to: WriteHalf<'_>,
    opened: Instant,
) -> Outcome {
    let (tx, rx) = mpsc::channel(READ_AHEAD);
    let writer = Writer::new(shared, stream, opened);
    let reader = read(from, tx);
    let writer = writer.run(rx, to);
    tokio::pin!(reader, writer);
    let mut reading = true;
    loop {
        tokio::select! {
            () = &mut reader, if reading => reading = false,
            outcome = &mut writer => return outcome,
        }
    }
}

async fn read(mut from: ReadHalf<'_>, tx: mpsc::Sender<Item>) {
    let mut buf = BytesMut::new();
    loop {
        buf.reserve(CHUNK);
        let item = match from.read_buf(&mut buf).await {
            Ok(0) => Item::Eof,
            Ok(_) => Item::Data {
                at: Instant::now(),
                bytes: buf.split().freeze(),
            },
            Err(_) => Item::Broken,
        };
        let last = !matches!(item, Item::Data { .. });
        if tx.send(item).await.is_err() || last {
            return;
        }
    }
}
