//! How the harness reaches a deployment over the network: one set of TLS
//! settings for every client, and a TLS front to test them against.
//!
//! Every client of the harness — the scenario runner's HTTP steps and
//! gateway WebSockets, the platform client, property, chaos, load (goose's
//! HTTP users and its WebSocket clients), the sweep and the readiness
//! checks of the `external` runtime — is built from one [`ClientTls`], so
//! `https://` and `wss://` URLs work everywhere with the same trust:
//!
//! - the public roots, plus a private CA with `--ca-cert FILE`
//!   (`TEKUP_CA_CERT`);
//! - a client certificate for mutual TLS with `--client-cert FILE
//!   --client-key FILE` (`TEKUP_CLIENT_CERT`, `TEKUP_CLIENT_KEY`);
//! - `--insecure` (`TEKUP_INSECURE=1`): no certificate or host name
//!   verification, said loudly on stderr at every start.
//!
//! The commands share the flags as [`TlsArgs`]; library users build a
//! [`ClientTls`] and give it to the [`crate::env::EcosystemBuilder`] (which
//! hands it to everything built from the ecosystem) or to
//! [`crate::platform::Platform::with_tls`]. A failed handshake is put in
//! words with the flag that fixes it by [`explain`]; the harness's error
//! chains ([`crate::env::error_chain`]) do so everywhere.
//!
//! [`TlsFront`] terminates TLS (optionally mutual) in front of a started
//! ecosystem with certificates made at run time ([`TestCerts`]), so all of
//! the above is tested against the real services.

mod args;
mod front;
mod tls;

pub use args::TlsArgs;
pub use front::{FrontError, ServerTls, TestCerts, TlsFront};
pub use tls::{explain, ClientTls, ClientTlsBuilder, TlsError, WsStream, INSECURE_WARNING};
