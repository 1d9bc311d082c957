//! Free ports for the process runtime, held until the component starts.
//!
//! A port found free is only free until someone else takes it: another
//! `bind(0)`, or (far more often) the local end of an outgoing connection,
//! which the kernel draws from the same ephemeral range. The process
//! runtime places every component before the first one starts, so a
//! service's port would stay unclaimed for the whole start-up (seconds of
//! pool and probe connections, twice as many through link proxies). A
//! [`Reserved`] port keeps a socket bound to it (`SO_REUSEADDR`, not
//! listening), which the kernel's choice of ports for `bind(0)` and for
//! outgoing connections avoids; it is let go just before the component is
//! spawned, so the component need not set `SO_REUSEADDR` itself.
//!
//! That leaves the moment between the release and the component's own
//! `bind`, a few hundred milliseconds while it starts. Under load (a stress
//! run beside other test processes) an outgoing connection of another
//! process once took a mock's port in that moment, and its start failed
//! with "Address already in use". So ports are drawn below the kernel's
//! ephemeral range (`/proc/sys/net/ipv4/ip_local_port_range`), from
//! [`FIRST`] up, where no outgoing connection's local end ever lands; a
//! port some other process holds fails the reservation's `bind` (made
//! without `SO_REUSEADDR`, which is set once it is bound) and another is
//! drawn. Where that range is too
//! small, the kernel picks (`bind(0)`), as before.

use std::collections::BTreeSet;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Mutex;

use rand::Rng as _;
use socket2::{Domain, Socket, Type};

/// The lowest port handed out: above the ports servers are commonly
/// configured on (8080, 9090, ...).
const FIRST: u16 = 15_000;

/// How many ports below the ephemeral range make it worth drawing from.
const ENOUGH: u16 = 2_000;

/// A port of 127.0.0.1 kept from others while this lives.
#[derive(Debug)]
pub(crate) struct Reserved {
    port: u16,
    _socket: Socket,
}

impl Reserved {
    pub(crate) fn port(&self) -> u16 {
        self.port
    }
}

/// A port that is free now and was not handed out before by this process,
/// held until the result is dropped.
///
/// The kernel may return a just-released port again; two ecosystems
/// starting in parallel tests would then give the same port to two
/// components before either binds it. Remembering what was handed out
/// closes that window within the process.
pub(crate) fn reserve() -> io::Result<Reserved> {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let below = ephemeral_low().filter(|low| low.saturating_sub(FIRST) >= ENOUGH);
    for _ in 0..256 {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
        let port = match below {
            Some(low) => {
                let port = rand::thread_rng().gen_range(FIRST..low);
                if handed_out.contains(&port) {
                    continue;
                }
                // Bound without SO_REUSEADDR, so that any socket on the
                // port (another process's reservation, a server, a
                // lingering connection) fails it: draw again.
                if socket
                    .bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)).into())
                    .is_err()
                {
                    continue;
                }
                // Then set, so that this process's own listener on the port
                // (a link proxy's) can bind beside the reservation.
                socket.set_reuse_address(true)?;
                port
            }
            None => {
                socket.set_reuse_address(true)?;
                socket.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())?;
                socket
                    .local_addr()?
                    .as_socket()
                    .map(|a| a.port())
                    .ok_or_else(|| io::Error::other("a bound socket without a port"))?
            }
        };
        if handed_out.insert(port) {
            return Ok(Reserved {
                port,
                _socket: socket,
            });
        }
    }
    Err(io::Error::other("no fresh free port after 256 tries"))
}

/// The first port of the kernel's ephemeral range, when it can be read.
fn ephemeral_low() -> Option<u16> {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// A free port that is no longer held (for a server started right away).
pub(crate) fn free_port() -> io::Result<u16> {
    reserve().map(|r| r.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reserved_port_is_kept_from_others_and_free_for_its_component() {
        let reserved = reserve().expect("reserves");
        let port = reserved.port();
        for _ in 0..200 {
            let other = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
            assert_ne!(other.local_addr().expect("addr").port(), port);
        }
        drop(reserved);
        std::net::TcpListener::bind(("127.0.0.1", port)).expect("the component binds it");
        assert_ne!(reserve().expect("reserves").port(), port, "never twice");
    }

    #[test]
    fn ports_come_from_below_the_ephemeral_range_where_connections_never_land() {
        let Some(low) = ephemeral_low().filter(|low| low.saturating_sub(FIRST) >= ENOUGH) else {
            return;
        };
        for _ in 0..50 {
            let port = reserve().expect("reserves").port();
            assert!((FIRST..low).contains(&port), "{port} not in {FIRST}..{low}");
        }
    }

    #[test]
    fn a_port_another_socket_holds_is_not_handed_out() {
        // Every port of the range but a few held by listeners here: the
        // reservations must land on the free ones.
        let reserved: Vec<Reserved> = (0..20).map(|_| reserve().expect("reserves")).collect();
        let held: BTreeSet<u16> = reserved.iter().map(Reserved::port).collect();
        assert_eq!(held.len(), 20, "twenty distinct ports");
        for r in &reserved {
            // Another reservation's bind (no SO_REUSEADDR) fails.
            let other = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
            assert!(
                other
                    .bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, r.port())).into())
                    .is_err(),
                "port {} is held",
                r.port()
            );
        }
    }
}
