//! What the suites sent and what the platform answered, kept so that the
//! checker can hold the platform to its answers afterwards.

use std::collections::BTreeMap;
use std::sync::Mutex;

use uuid::Uuid;

/// A lead the platform accepted (answered 201 with this id).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AcceptedLead {
    pub tenant: String,
    pub id: Uuid,
    pub email: String,
    /// The trace its request began ([`super::LeadTraces::begin`]), when it
    /// was sent with one: the traces then witness its processing too.
    pub trace: Option<String>,
}

/// The leads suites created, by outcome. Shared by the tasks of a load.
#[derive(Debug, Default)]
pub struct Ledger {
    inner: Mutex<Entries>,
}

#[derive(Debug, Default, Clone)]
struct Entries {
    accepted: Vec<AcceptedLead>,
    refused: BTreeMap<u16, u64>,
    unanswered: u64,
    jobs: BTreeMap<String, u64>,
}

/// How the platform answered the requests of a ledger (leads and any
/// other request a suite records).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tally {
    /// 201 with an id.
    pub accepted: u64,
    /// Any other status: the platform said no, which is allowed during a
    /// fault (a 503 while Redis is down); the lead must then not exist.
    pub refused: u64,
    /// No answer at all (a timeout, a reset): the lead may or may not exist.
    pub unanswered: u64,
}

impl Ledger {
    /// An empty ledger.
    pub fn new() -> Ledger {
        Ledger::default()
    }

    /// Records a lead answered with 201.
    pub fn accepted(&self, lead: AcceptedLead) {
        self.lock().accepted.push(lead);
    }

    /// Records a request answered with `status` (not a success).
    pub fn refused(&self, status: u16) {
        *self.lock().refused.entry(status).or_default() += 1;
    }

    /// The refusals so far, by status.
    pub fn refusals(&self) -> BTreeMap<u16, u64> {
        self.lock().refused.clone()
    }

    /// Records a lead request that got no answer.
    pub fn unanswered(&self) {
        self.lock().unanswered += 1;
    }

    /// Records a job the platform accepted onto `queue` (a lead's
    /// processing, an email sync).
    pub fn job_accepted(&self, queue: &str) {
        *self.lock().jobs.entry(queue.to_owned()).or_default() += 1;
    }

    /// Jobs accepted per queue so far.
    pub fn jobs(&self) -> BTreeMap<String, u64> {
        self.lock().jobs.clone()
    }

    /// The accepted leads so far.
    pub fn accepted_leads(&self) -> Vec<AcceptedLead> {
        self.lock().accepted.clone()
    }

    /// The counts so far.
    pub fn tally(&self) -> Tally {
        let entries = self.lock();
        Tally {
            accepted: entries.accepted.len() as u64,
            refused: entries.refused.values().sum(),
            unanswered: entries.unanswered,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // A panicking recorder cannot leave the entries half-written (each
        // change is one push or one increment), so a poisoned lock is fine.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
