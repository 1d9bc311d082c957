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

use std::collections::BTreeSet;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Mutex;

use socket2::{Domain, Socket, Type};

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
    for _ in 0..64 {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
        socket.set_reuse_address(true)?;
        socket.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())?;
        let port = socket
            .local_addr()?
            .as_socket()
            .map(|a| a.port())
            .ok_or_else(|| io::Error::other("a bound socket without a port"))?;
        if handed_out.insert(port) {
            return Ok(Reserved {
                port,
                _socket: socket,
            });
        }
    }
    Err(io::Error::other("no fresh free port after 64 tries"))
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
}
