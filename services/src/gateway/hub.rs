//! The fan-out core: rooms of connections and the dispatch of events.
//!
//! A connection joins exactly one room, `(tenant, app)`: the intersection
//! of the rooms `tenant:<id>` and `app:<id>` that the protocol names. An
//! event is offered to the rooms `(event.tenant, app)` for each recipient
//! app, so it can never reach another tenant's connection.
//!
//! Each room an event reaches is recorded as a `deliver {TYPE}` span in
//! the event's trace (from its envelope's `traceparent`; see
//! [`crate::telemetry`]).
//!
//! Dispatch never waits for a connection: each has a bounded buffer, and a
//! connection whose buffer is full is told to close (slow consumer) while
//! the others carry on.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::events::{parse_cursor, CrossAppEvent};
use crate::metrics::{EventTypeLabels, Metrics};

/// How many recent event ids are remembered to drop re-published duplicates.
const RECENT_IDS: usize = 100_000;

/// A frame ready to send, serialised once for every recipient.
#[derive(Debug)]
pub struct Frame {
    pub cursor: (u64, u64),
    pub event_id: Uuid,
    pub text: String,
}

impl Frame {
    /// The wire form of an event: `{"type":"event","cursor":…,"event":{…}}`.
    pub fn event(cursor: &str, event: &CrossAppEvent) -> Option<Self> {
        let text = json!({ "type": "event", "cursor": cursor, "event": event }).to_string();
        Some(Self {
            cursor: parse_cursor(cursor)?,
            event_id: event.id,
            text,
        })
    }
}

/// What the audit writer records per event and room.
#[derive(Debug, Clone)]
pub struct AuditRow {
    pub tenant_id: String,
    pub event_id: Uuid,
    pub event_type: String,
    pub cursor: String,
    pub app: String,
    pub connections: i32,
}

#[derive(Debug)]
struct Member {
    tx: mpsc::Sender<Arc<Frame>>,
    slow: CancellationToken,
}

type Room = (String, String);

#[derive(Debug, Default)]
struct RecentIds {
    set: HashSet<Uuid>,
    order: VecDeque<Uuid>,
}

impl RecentIds {
    /// Records `id`; false when it was already there.
    fn insert(&mut self, id: Uuid) -> bool {
        if !self.set.insert(id) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > RECENT_IDS {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }
}

/// All connections of one gateway process.
#[derive(Debug)]
pub struct Hub {
    rooms: RwLock<HashMap<Room, HashMap<u64, Member>>>,
    next_id: AtomicU64,
    recent: Mutex<RecentIds>,
    metrics: Arc<Metrics>,
    audit: mpsc::UnboundedSender<AuditRow>,
    buffer: usize,
}

/// A connection's membership; leaving the room on drop.
#[derive(Debug)]
pub struct Subscription {
    hub: Arc<Hub>,
    room: Room,
    pub id: u64,
    pub frames: mpsc::Receiver<Arc<Frame>>,
    /// Cancelled when the connection fell too far behind.
    pub slow: CancellationToken,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut rooms = self.hub.rooms.write().unwrap_or_else(|e| e.into_inner());
        if let Some(members) = rooms.get_mut(&self.room) {
            members.remove(&self.id);
            if members.is_empty() {
                rooms.remove(&self.room);
            }
        }
        self.hub.metrics.websocket_connections.dec();
    }
}

impl Hub {
    /// A hub whose connections buffer up to `buffer` frames each.
    pub fn new(
        metrics: Arc<Metrics>,
        audit: mpsc::UnboundedSender<AuditRow>,
        buffer: usize,
    ) -> Arc<Self> {
        Arc::new(Self {
            rooms: RwLock::default(),
            next_id: AtomicU64::new(1),
            recent: Mutex::default(),
            metrics,
            audit,
            buffer: buffer.max(1),
        })
    }

    /// Joins the room of `tenant` and `app`.
    pub fn join(self: &Arc<Self>, tenant: &str, app: &str) -> Subscription {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, frames) = mpsc::channel(self.buffer);
        let slow = CancellationToken::new();
        let room = (tenant.to_owned(), app.to_owned());
        self.rooms
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(room.clone())
            .or_default()
            .insert(
                id,
                Member {
                    tx,
                    slow: slow.clone(),
                },
            );
        self.metrics.websocket_connections.inc();
        Subscription {
            hub: Arc::clone(self),
            room,
            id,
            frames,
            slow,
        }
    }

    /// Offers an event to its rooms; returns how many connections took it.
    /// An event id seen before is dropped (publishing is at-least-once).
    pub fn dispatch(&self, cursor: &str, event: &CrossAppEvent) -> usize {
        if !self
            .recent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(event.id)
        {
            tracing::debug!(event = %event.id, "duplicate event dropped");
            return 0;
        }
        let Some(frame) = Frame::event(cursor, event) else {
            tracing::warn!(cursor, "event with an unreadable cursor dropped");
            return 0;
        };
        let frame = Arc::new(frame);
        self.metrics
            .websocket_events_published
            .get_or_create(&EventTypeLabels {
                event_type: event.kind.clone(),
            })
            .inc();
        let rooms = self.rooms.read().unwrap_or_else(|e| e.into_inner());
        let mut total = 0;
        let leak = crate::defects::active("cross-tenant-fanout");
        for app in event.recipients() {
            let room = (event.tenant_id.clone(), app.to_owned());
            let mut delivered = 0;
            let targets = rooms
                .iter()
                .filter(|(r, _)| **r == room || (leak && r.1 == app));
            for ((room_tenant, _), members) in targets {
                let before = delivered;
                for member in members.values() {
                    match member.tx.try_send(Arc::clone(&frame)) {
                        Ok(()) => delivered += 1,
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            if !member.slow.is_cancelled() {
                                self.metrics.websocket_slow_consumers.inc();
                                member.slow.cancel();
                            }
                        }
                        Err(mpsc::error::TrySendError::Closed(_)) => {}
                    }
                }
                if delivered > before {
                    // One span per room delivered to, ending here.
                    drop(crate::telemetry::deliver(
                        event,
                        room_tenant,
                        app,
                        delivered - before,
                    ));
                }
            }
            if delivered > 0 {
                let _ = self.audit.send(AuditRow {
                    tenant_id: event.tenant_id.clone(),
                    event_id: event.id,
                    event_type: event.kind.clone(),
                    cursor: cursor.to_owned(),
                    app: app.to_owned(),
                    connections: i32::try_from(delivered).unwrap_or(i32::MAX),
                });
            }
            total += delivered;
        }
        self.metrics.websocket_events_delivered.inc_by(total as u64);
        total
    }

    /// Records a delivery made outside [`Hub::dispatch`] (a replay).
    pub fn audit(&self, row: AuditRow) {
        let _ = self.audit.send(row);
    }

    /// Whether the event should be replayed to a connection of `tenant`/`app`.
    pub fn visible_to(event: &CrossAppEvent, tenant: &str, app: &str) -> bool {
        event.tenant_id == tenant && event.recipients().contains(&app)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hub(buffer: usize) -> (Arc<Hub>, mpsc::UnboundedReceiver<AuditRow>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Hub::new(Arc::new(Metrics::new()), tx, buffer), rx)
    }

    #[test]
    fn events_reach_only_their_tenants_routed_apps() {
        let (hub, mut audit) = hub(8);
        let mut crm = hub.join("acme", "crm-web");
        let mut flow = hub.join("acme", "flow-web");
        let mut inbox = hub.join("acme", "inbox-ai");
        let mut spy = hub.join("globex", "crm-web");
        let event = CrossAppEvent::new("LEAD_CREATED", "flow-api", "acme", json!({ "id": 1 }));
        assert_eq!(hub.dispatch("1-0", &event), 2);
        assert!(crm.frames.try_recv().unwrap().text.contains("LEAD_CREATED"));
        assert!(flow.frames.try_recv().is_ok());
        assert!(inbox.frames.try_recv().is_err());
        assert!(spy.frames.try_recv().is_err());
        let rows: Vec<AuditRow> = std::iter::from_fn(|| audit.try_recv().ok()).collect();
        assert_eq!(rows.len(), 2);
        assert!(rows
            .iter()
            .all(|r| r.tenant_id == "acme" && r.connections == 1));
    }

    #[test]
    fn a_duplicate_event_id_is_dispatched_once() {
        let (hub, _audit) = hub(8);
        let mut crm = hub.join("acme", "crm-web");
        let event = CrossAppEvent::new("LEAD_CREATED", "flow-api", "acme", json!({}));
        assert_eq!(hub.dispatch("1-0", &event), 1);
        assert_eq!(hub.dispatch("2-0", &event), 0);
        assert!(crm.frames.try_recv().is_ok());
        assert!(crm.frames.try_recv().is_err());
    }

    #[test]
    fn a_full_buffer_marks_only_that_connection_slow() {
        let (hub, _audit) = hub(2);
        let slow = hub.join("acme", "crm-web");
        let mut fast = hub.join("acme", "crm-web");
        for i in 0..3 {
            let event = CrossAppEvent::new("LEAD_CREATED", "flow-api", "acme", json!({ "i": i }));
            hub.dispatch(&format!("{}-0", i + 1), &event);
            fast.frames
                .try_recv()
                .expect("the fast connection keeps up");
        }
        assert!(slow.slow.is_cancelled());
        assert!(!fast.slow.is_cancelled());
    }

    #[test]
    fn leaving_empties_the_room() {
        let (hub, _audit) = hub(2);
        let sub = hub.join("acme", "crm-web");
        drop(sub);
        let event = CrossAppEvent::new("LEAD_CREATED", "flow-api", "acme", json!({}));
        assert_eq!(hub.dispatch("1-0", &event), 0);
        assert!(hub.rooms.read().unwrap().is_empty());
    }
}
