//! The operations a case is made of, and the strategy that generates them.
//!
//! Every reference to something made earlier (a lead, a contact, an
//! incident, another tenant) is a plain index, resolved modulo what exists
//! when the operation runs (see `plan`). So any subsequence of a valid
//! sequence is valid too, which is what lets proptest shrink by dropping
//! operations: nothing dangles, an operation whose target does not exist
//! (yet) is skipped.

use std::fmt;

use proptest::prelude::*;

/// The apps of the platform's permission matrix that tenants' keys may
/// name, from the contract (`apps:`), never the services' own list.
pub fn apps() -> Vec<&'static str> {
    crate::contract::active()
        .apps
        .iter()
        .map(String::as_str)
        .collect()
}

/// The emails leads and contacts use: few, so that leads meet synced
/// contacts and each other (the association paths), and the same in every
/// tenant (emails are unique per tenant only, so isolation is by id).
pub const EMAILS: usize = 4;

/// The lead statuses (`PATCH /leads/{id}` moves between them).
pub const STATUSES: [&str; 5] = ["new", "contacted", "qualified", "converted", "lost"];

/// Incident severities.
pub const SEVERITIES: [&str; 4] = ["low", "medium", "high", "critical"];

/// One operation of a case. `tenant` picks one of the case's tenants,
/// other indices pick among what exists (modulo its count).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Op {
    /// `POST /leads` as flow-web.
    CreateLead { tenant: usize, email: usize },
    /// `PATCH /leads/{id}` as flow-web; the lead may be another tenant's.
    UpdateLead {
        tenant: usize,
        lead: usize,
        status: usize,
    },
    /// `GET /leads` as flow-web.
    ListLeads { tenant: usize },
    /// `GET /leads/{id}` as flow-web; the lead may be another tenant's.
    GetLead { tenant: usize, lead: usize },
    /// `POST /contacts/sync` as crm-web.
    SyncContacts { tenant: usize, emails: Vec<usize> },
    /// `GET /contacts` as crm-web.
    ListContacts { tenant: usize },
    /// `POST /deals` as crm-web, with a contact that may be another tenant's.
    CreateDeal {
        tenant: usize,
        contact: Option<usize>,
    },
    /// `POST /incidents` on the secure platform.
    ReportIncident { tenant: usize, severity: usize },
    /// A WebSocket client of the gateway as (tenant, app).
    Subscribe { tenant: usize, app: usize },
    /// A call across apps or services that must be refused.
    CrossApp { tenant: usize, call: CrossCall },
    /// A request with forged or swapped credentials or another tenant's id.
    Forged {
        tenant: usize,
        victim: usize,
        forgery: Forgery,
    },
    /// A lead's `process-lead` job handed to the workers again.
    Redeliver { lead: usize },
}

/// Calls an app or service may not make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CrossCall {
    /// A tenant key naming a service identity (`worker`) as its app, on the
    /// path that service calls (`POST /compliance/report`).
    ServiceIdentity,
    /// An app of the matrix without the permission (voice-agent writing leads).
    NoPermission,
    /// An app on a service it has no grants on (flow-web syncing CRM contacts).
    WrongService,
    /// An app outside the tenant's allowed apps.
    UnknownApp,
    /// A made-up cross-app bearer token, as if flow-api called crm-api.
    ForgedToken,
}

/// Credentials or ids that do not belong together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Forgery {
    /// The tenant's key with the victim's tenant id.
    SwappedKey,
    /// A key nobody issued, with the victim's tenant id.
    MadeUpKey,
    /// The victim's contact id in the path of the tenant's own request.
    ForeignContact,
    /// The victim's incident id in the path of the tenant's own request.
    ForeignIncident,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::CreateLead { tenant, email } => {
                write!(f, "t{tenant} creates a lead (email #{email})")
            }
            Op::UpdateLead {
                tenant,
                lead,
                status,
            } => write!(
                f,
                "t{tenant} moves lead #{lead} to `{}`",
                STATUSES[status % STATUSES.len()]
            ),
            Op::ListLeads { tenant } => write!(f, "t{tenant} lists its leads"),
            Op::GetLead { tenant, lead } => write!(f, "t{tenant} reads lead #{lead}"),
            Op::SyncContacts { tenant, emails } => {
                write!(f, "t{tenant} syncs contacts (emails {emails:?})")
            }
            Op::ListContacts { tenant } => write!(f, "t{tenant} lists its contacts"),
            Op::CreateDeal { tenant, contact } => match contact {
                Some(c) => write!(f, "t{tenant} opens a deal for contact #{c}"),
                None => write!(f, "t{tenant} opens a deal"),
            },
            Op::ReportIncident { tenant, severity } => write!(
                f,
                "t{tenant} reports a {} incident",
                SEVERITIES[severity % SEVERITIES.len()]
            ),
            Op::Subscribe { tenant, app } => {
                let apps = apps();
                write!(f, "t{tenant} subscribes as {}", apps[app % apps.len()])
            }
            Op::CrossApp { tenant, call } => write!(f, "t{tenant} cross-app call {call:?}"),
            Op::Forged {
                tenant,
                victim,
                forgery,
            } => write!(f, "t{tenant} forgery {forgery:?} against tenant #{victim}"),
            Op::Redeliver { lead } => write!(f, "lead #{lead}'s job is delivered again"),
        }
    }
}

/// A case: how many tenants (2 or 3) and the operations.
pub fn case(max_ops: usize) -> impl Strategy<Value = (usize, Vec<Op>)> {
    (
        2usize..=3,
        proptest::collection::vec(op(), 1..=max_ops.max(1)),
    )
}

/// One operation, weighted so that what the invariants are about comes
/// often within a few operations: leads, redeliveries and subscriptions.
pub fn op() -> impl Strategy<Value = Op> {
    let tenant = 0usize..3;
    let index = 0usize..8;
    prop_oneof![
        6 => (tenant.clone(), 0..EMAILS).prop_map(|(tenant, email)| Op::CreateLead { tenant, email }),
        5 => (tenant.clone(), 0..apps().len()).prop_map(|(tenant, app)| Op::Subscribe { tenant, app }),
        3 => index.clone().prop_map(|lead| Op::Redeliver { lead }),
        2 => (tenant.clone(), index.clone(), 0..STATUSES.len())
            .prop_map(|(tenant, lead, status)| Op::UpdateLead { tenant, lead, status }),
        2 => tenant.clone().prop_map(|tenant| Op::ListLeads { tenant }),
        2 => (tenant.clone(), index.clone()).prop_map(|(tenant, lead)| Op::GetLead { tenant, lead }),
        2 => (tenant.clone(), proptest::collection::vec(0..EMAILS, 1..=3))
            .prop_map(|(tenant, emails)| Op::SyncContacts { tenant, emails }),
        1 => tenant.clone().prop_map(|tenant| Op::ListContacts { tenant }),
        1 => (tenant.clone(), proptest::option::of(index.clone()))
            .prop_map(|(tenant, contact)| Op::CreateDeal { tenant, contact }),
        2 => (tenant.clone(), 0..SEVERITIES.len())
            .prop_map(|(tenant, severity)| Op::ReportIncident { tenant, severity }),
        1 => (tenant.clone(), cross_call()).prop_map(|(tenant, call)| Op::CrossApp { tenant, call }),
        2 => (tenant, 0usize..2, forgery())
            .prop_map(|(tenant, victim, forgery)| Op::Forged { tenant, victim, forgery }),
    ]
}

fn cross_call() -> impl Strategy<Value = CrossCall> {
    prop_oneof![
        Just(CrossCall::ServiceIdentity),
        Just(CrossCall::NoPermission),
        Just(CrossCall::WrongService),
        Just(CrossCall::UnknownApp),
        Just(CrossCall::ForgedToken),
    ]
}

fn forgery() -> impl Strategy<Value = Forgery> {
    prop_oneof![
        Just(Forgery::SwappedKey),
        Just(Forgery::MadeUpKey),
        Just(Forgery::ForeignContact),
        Just(Forgery::ForeignIncident),
    ]
}
