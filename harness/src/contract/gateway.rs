//! The WebSocket event gateway as the contract states it (`gateway:`).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// The WebSocket event gateway's handshake and room protocol.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Gateway {
    pub service: String,
    pub path: String,
    /// Credential header name (as in `headers`) -> its query parameter.
    pub query_credentials: BTreeMap<String, String>,
    /// The rooms a connection is in: `{tenant}` and `{app}` replaced.
    pub rooms: Vec<String>,
    /// The join message, without its `room`.
    pub join: Value,
    /// What a join of one's own room answers (a subset of the frame).
    pub joined: Value,
    /// What a join of any other room answers (a subset of the frame).
    pub refused: Value,
    /// How a client that lost its connection resumes without missing or
    /// repeating an event; absent when the platform does not promise it.
    #[serde(default)]
    pub resume: Option<Resume>,
}

/// The gateway's resume promise (`gateway.resume`): a client reconnecting
/// with the cursor of the last event frame it got, in `header`, is first
/// sent every event of its rooms published after that cursor, then the
/// live ones; none twice.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Resume {
    /// The handshake header that carries the cursor (`last-event-id`).
    pub header: String,
    /// The field of an event frame that holds its cursor (`cursor`).
    pub cursor: String,
}

impl Gateway {
    /// The rooms of `tenant`'s connection as `app`.
    pub fn rooms_of(&self, tenant: &str, app: &str) -> Vec<String> {
        self.rooms
            .iter()
            .map(|r| r.replace("{tenant}", tenant).replace("{app}", app))
            .collect()
    }
}
