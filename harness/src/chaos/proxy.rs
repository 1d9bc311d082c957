//! [`Proxy`]: a TCP listener on 127.0.0.1 that forwards every connection to
//! one upstream address through a chain of [`Toxic`]s.
//!
//! Each accepted connection is one task (`conn.rs`) that opens its own
//! connection to the upstream, so an upstream that restarts on the same
//! address is reached again by the next connection. The toxics live in a
//! `watch` channel: adding, updating or removing one reaches the existing
//! connections too (on their next chunk of data, or at once for a toxic that
//! is holding data back).
//!
//! Disabling the proxy (`down`) closes every open connection and stops
//! listening without giving the port up, so connecting is refused (not
//! accepted and closed) until it is enabled again on the same port. On
//! Linux, `shutdown(SHUT_RD)` of a listening socket does that and
//! `listen()` undoes it; the port is kept because it was bound explicitly
//! (`SO_REUSEADDR`, beside the reservation that found it), not auto-bound. The accept task hands the listener back to the standard
//! library while disabled and registers it with tokio afresh when enabled:
//! tokio keeps a socket's "closed" readiness for good, which would make
//! `accept` spin after the shutdown.
//!
//! Dropping a proxy stops listening at once and ends every task it started;
//! [`Proxy::shutdown`] also waits for them.

use std::fmt;
use std::net::{Ipv4Addr, Shutdown, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::conn;
use super::error::{list, ChaosError};
use super::toxic::Toxic;

const BACKLOG: i32 = 1024;

/// One toxic in force on a proxy; `id` survives updates (so does the
/// per-connection state of the toxic: its toxicity roll, bytes counted).
#[derive(Debug, Clone)]
pub(super) struct Active {
    pub(super) id: u64,
    pub(super) name: String,
    pub(super) toxic: Toxic,
    /// When it was added or last updated.
    pub(super) since: Instant,
}

/// The toxics of a proxy, in the order they were added.
pub(super) type Chain = Arc<Vec<Active>>;

/// What a proxy has carried.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Connections accepted since it started.
    pub accepted: u64,
    /// Connections open now.
    pub active: u64,
    /// Bytes delivered from clients to the upstream.
    pub bytes_upstream: u64,
    /// Bytes delivered from the upstream to clients.
    pub bytes_downstream: u64,
}

#[derive(Debug, Default)]
pub(super) struct Counters {
    accepted: AtomicU64,
    active: AtomicU64,
    pub(super) upstream: AtomicU64,
    pub(super) downstream: AtomicU64,
}

/// Counts a connection as active for as long as its task lives.
struct ActiveGuard(Arc<Shared>);

impl ActiveGuard {
    fn new(shared: Arc<Shared>) -> Self {
        shared.counters.accepted.fetch_add(1, Ordering::Relaxed);
        shared.counters.active.fetch_add(1, Ordering::Relaxed);
        Self(shared)
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.counters.active.fetch_sub(1, Ordering::Relaxed);
    }
}

struct Control {
    next_id: u64,
    /// Cancelled when the proxy is disabled: ends the connections of the
    /// enabled period.
    epoch: CancellationToken,
}

pub(super) struct Shared {
    pub(super) name: String,
    addr: SocketAddr,
    pub(super) upstream: SocketAddr,
    /// The listening socket (a duplicate descriptor of the one the accept
    /// task registers with tokio), to stop and restart listening at once.
    socket: Socket,
    pub(super) chain: watch::Sender<Chain>,
    control: Mutex<Control>,
    enabled: watch::Sender<bool>,
    pub(super) counters: Counters,
    stop: CancellationToken,
    tasks: TaskTracker,
}

impl Shared {
    fn control(&self) -> std::sync::MutexGuard<'_, Control> {
        self.control.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A fault-injecting TCP proxy. See the [module docs](self).
pub struct Proxy {
    shared: Arc<Shared>,
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("name", &self.shared.name)
            .field("addr", &self.shared.addr)
            .field("upstream", &self.shared.upstream)
            .field("enabled", &self.is_enabled())
            .field("toxics", &self.toxics())
            .finish()
    }
}

impl Proxy {
    /// Listens on a free port of 127.0.0.1 and forwards to `upstream`
    /// (which need not be up yet: each connection connects on its own).
    pub async fn start(name: impl Into<String>, upstream: SocketAddr) -> Result<Self, ChaosError> {
        let name = name.into();
        let (listener, socket) = bind_loopback().map_err(ChaosError::io(format!(
            "listen for proxy `{name}` on 127.0.0.1"
        )))?;
        let addr = listener
            .local_addr()
            .map_err(ChaosError::io("read the proxy's address"))?;
        // Registered now, so that an error shows here rather than in the task.
        let listener = TcpListener::from_std(listener).map_err(ChaosError::io(format!(
            "register proxy `{name}` with tokio"
        )))?;
        let stop = CancellationToken::new();
        let shared = Arc::new(Shared {
            name,
            addr,
            upstream,
            socket,
            chain: watch::Sender::new(Arc::new(Vec::new())),
            control: Mutex::new(Control {
                next_id: 1,
                epoch: stop.child_token(),
            }),
            enabled: watch::Sender::new(true),
            counters: Counters::default(),
            stop,
            tasks: TaskTracker::new(),
        });
        shared
            .tasks
            .spawn(accept_loop(Arc::clone(&shared), listener));
        Ok(Self { shared })
    }

    /// Its name (a link's is `from->to`).
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Where clients connect: 127.0.0.1 and its port.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// Where it forwards to.
    pub fn upstream(&self) -> SocketAddr {
        self.shared.upstream
    }

    /// Adds `toxic` after the ones in force. Existing connections feel it
    /// from their next chunk of data on (a `timeout` also while idle).
    pub fn add(&self, toxic: Toxic) -> Result<(), ChaosError> {
        let name = self.check(&toxic)?;
        let mut control = self.shared.control();
        if self.shared.chain.borrow().iter().any(|a| a.name == name) {
            return Err(ChaosError::DuplicateToxic {
                proxy: self.shared.name.clone(),
                name,
            });
        }
        let id = control.next_id;
        control.next_id += 1;
        self.shared.chain.send_modify(|chain| {
            Arc::make_mut(chain).push(Active {
                id,
                name,
                toxic,
                since: Instant::now(),
            });
        });
        Ok(())
    }

    /// Replaces the toxic of the same name (its position, per-connection
    /// state and toxicity rolls are kept; its timers start again).
    pub fn update(&self, toxic: Toxic) -> Result<(), ChaosError> {
        let name = self.check(&toxic)?;
        let _control = self.shared.control();
        self.position(&name)?;
        self.shared.chain.send_modify(|chain| {
            if let Some(active) = Arc::make_mut(chain).iter_mut().find(|a| a.name == name) {
                active.toxic = toxic;
                active.since = Instant::now();
            }
        });
        Ok(())
    }

    /// Removes the toxic called `name`; data it was holding back flows on.
    pub fn remove(&self, name: &str) -> Result<(), ChaosError> {
        let _control = self.shared.control();
        let index = self.position(name)?;
        self.shared.chain.send_modify(|chain| {
            Arc::make_mut(chain).remove(index);
        });
        Ok(())
    }

    /// The toxics in force, in order.
    pub fn toxics(&self) -> Vec<Toxic> {
        self.shared
            .chain
            .borrow()
            .iter()
            .map(|a| a.toxic.clone().named(a.name.clone()))
            .collect()
    }

    /// Removes every toxic and enables the proxy (Toxiproxy's reset).
    pub fn reset(&self) -> Result<(), ChaosError> {
        {
            let _control = self.shared.control();
            self.shared.chain.send_replace(Arc::new(Vec::new()));
        }
        self.enable()
    }

    /// Takes the link down: open connections are closed and new ones are
    /// refused (the port stays reserved) until [`Proxy::enable`].
    pub fn disable(&self) -> Result<(), ChaosError> {
        let mut control = self.shared.control();
        if !*self.shared.enabled.borrow() {
            return Ok(());
        }
        // Marked down first, so the accept task that wakes up from the
        // shutdown knows why.
        self.shared.enabled.send_replace(false);
        if let Err(e) = self.shared.socket.shutdown(Shutdown::Read) {
            self.shared.enabled.send_replace(true);
            return Err(ChaosError::io(format!(
                "stop listening on {} (proxy `{}`)",
                self.shared.addr, self.shared.name
            ))(e));
        }
        control.epoch.cancel();
        control.epoch = self.shared.stop.child_token();
        Ok(())
    }

    /// Brings the link back up on the same port.
    pub fn enable(&self) -> Result<(), ChaosError> {
        let _control = self.shared.control();
        if *self.shared.enabled.borrow() {
            return Ok(());
        }
        self.shared
            .socket
            .listen(BACKLOG)
            .map_err(ChaosError::io(format!(
                "listen again on {} (proxy `{}`)",
                self.shared.addr, self.shared.name
            )))?;
        self.shared.enabled.send_replace(true);
        Ok(())
    }

    /// Whether it accepts connections.
    pub fn is_enabled(&self) -> bool {
        *self.shared.enabled.borrow()
    }

    /// Connections and bytes so far.
    pub fn stats(&self) -> ProxyStats {
        let c = &self.shared.counters;
        ProxyStats {
            accepted: c.accepted.load(Ordering::Relaxed),
            active: c.active.load(Ordering::Relaxed),
            bytes_upstream: c.upstream.load(Ordering::Relaxed),
            bytes_downstream: c.downstream.load(Ordering::Relaxed),
        }
    }

    /// Stops listening, closes every connection and waits until all of the
    /// proxy's tasks have ended.
    pub async fn shutdown(self) {
        self.stop();
        self.shared.tasks.close();
        self.shared.tasks.wait().await;
    }

    fn stop(&self) {
        // Cancelled first, so the accept task that wakes up from the
        // shutdown knows why; shut down to refuse new connections now, not
        // when the accept task next runs.
        self.shared.stop.cancel();
        let _ = self.shared.socket.shutdown(Shutdown::Read);
    }

    fn check(&self, toxic: &Toxic) -> Result<String, ChaosError> {
        let name = toxic.name();
        match toxic.problem() {
            Some(message) => Err(ChaosError::InvalidToxic {
                proxy: self.shared.name.clone(),
                name,
                message,
            }),
            None => Ok(name),
        }
    }

    fn position(&self, name: &str) -> Result<usize, ChaosError> {
        self.shared
            .chain
            .borrow()
            .iter()
            .position(|a| a.name == name)
            .ok_or_else(|| self.no_such(name))
    }

    fn no_such(&self, name: &str) -> ChaosError {
        ChaosError::NoSuchToxic {
            proxy: self.shared.name.clone(),
            name: name.to_owned(),
            known: list(self.shared.chain.borrow().iter().map(|a| a.name.clone())),
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A listener on an explicitly bound port of 127.0.0.1 (see the module
/// docs for why not port 0 directly), and a second descriptor of it. The
/// port comes from the process runtime's reservations, so it is never one
/// handed to a component.
fn bind_loopback() -> std::io::Result<(std::net::TcpListener, Socket)> {
    let placeholder = crate::env::ports::reserve()?;
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, placeholder.port())).into())?;
    socket.listen(BACKLOG)?;
    socket.set_nonblocking(true)?;
    drop(placeholder);
    let control = socket.try_clone()?;
    Ok((socket.into(), control))
}

async fn accept_loop(shared: Arc<Shared>, mut listener: TcpListener) {
    let mut enabled = shared.enabled.subscribe();
    loop {
        if !accept_until_changed(&shared, &listener, &mut enabled).await {
            return;
        }
        // Leave tokio's reactor, wait until enabled, and come back with a
        // fresh registration (and so fresh readiness).
        let parked = match listener.into_std() {
            Ok(parked) => parked,
            Err(e) => {
                tracing::error!(proxy = %shared.name, error = %e, "failed to deregister the listener; the proxy stops accepting");
                return;
            }
        };
        while !*enabled.borrow_and_update() {
            tokio::select! {
                () = shared.stop.cancelled() => return,
                changed = enabled.changed() => if changed.is_err() { return },
            }
        }
        listener = match TcpListener::from_std(parked) {
            Ok(listener) => listener,
            Err(e) => {
                tracing::error!(proxy = %shared.name, error = %e, "failed to register the listener again; the proxy stops accepting");
                return;
            }
        };
    }
}

/// Accepts connections until the proxy is disabled or enabled, or an accept
/// fails (`true`: register again), or it is stopped (`false`).
async fn accept_until_changed(
    shared: &Arc<Shared>,
    listener: &TcpListener,
    enabled: &mut watch::Receiver<bool>,
) -> bool {
    loop {
        let accepted = tokio::select! {
            () = shared.stop.cancelled() => return false,
            changed = enabled.changed() => return changed.is_ok(),
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((client, _)) => {
                let epoch = shared.control().epoch.clone();
                let guard = ActiveGuard::new(Arc::clone(shared));
                shared.tasks.spawn(async move {
                    conn::serve(&guard.0, client, epoch).await;
                    drop(guard);
                });
            }
            // Stopped or disabled while waiting: the socket was shut down.
            Err(_) if shared.stop.is_cancelled() => return false,
            Err(_) if !*shared.enabled.borrow() => return true,
            Err(e) => {
                // Out of descriptors and the like: report, back off, go on.
                tracing::warn!(proxy = %shared.name, error = %e, "failed to accept a connection");
                tokio::select! {
                    () = shared.stop.cancelled() => return false,
                    () = tokio::time::sleep(Duration::from_millis(50)) => return true,
                }
            }
        }
    }
}
