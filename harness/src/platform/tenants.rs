//! The tenants a run makes, and what becomes of them.
//!
//! Every tenant the harness makes is named as the harness's:
//! `tekup-harness-<run id>-<name>-<8 hex>` (at most 63 characters, the
//! platform's limit), so an operator can tell them from real ones on a
//! shared deployment and find one run's. A [`TenantLedger`] records each,
//! and [`release_tenants`] disposes of them at the end.
//!
//! The platform's admin API can create tenants (`POST /admin/tenants`) but
//! neither delete nor suspend them, so an external deployment's tenants
//! are *suspended* through the database, with the contract's
//! `stores.suspend-tenant` statement, when the external file gives a
//! database DSN; without one they are left, and the run says which and
//! why. Suspending is not deleting: the rows stay, the tenant can no
//! longer be used. Under the process and docker runtimes the whole
//! database goes with the ecosystem.

use std::sync::{Mutex, PoisonError};

/// What every harness tenant's id starts with.
pub const TENANT_PREFIX: &str = "tekup-harness";

/// The longest tenant id the platform accepts.
const MAX_TENANT_ID: usize = 63;

/// The tenants made on one ecosystem (or by one [`super::Platform`]).
#[derive(Debug)]
pub struct TenantLedger {
    prefix: String,
    made: Mutex<Vec<String>>,
}

impl TenantLedger {
    /// A ledger for run `run_id`: ids start `tekup-harness-<run_id>-`.
    pub fn new(run_id: &str) -> TenantLedger {
        TenantLedger {
            prefix: format!("{TENANT_PREFIX}-{}", super::sanitize(run_id)),
            made: Mutex::new(Vec::new()),
        }
    }

    /// What this run's tenant ids start with (`tekup-harness-<run id>`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A fresh id for a tenant called `name`: the prefix, the name (cut
    /// so the whole fits the platform's 63 characters) and 8 random hex.
    pub fn fresh_id(&self, name: &str) -> String {
        let random = &uuid::Uuid::new_v4().simple().to_string()[..8];
        let room = MAX_TENANT_ID.saturating_sub(self.prefix.len() + random.len() + 2);
        let name: String = super::sanitize(name).chars().take(room).collect();
        format!("{}-{}-{random}", self.prefix, name.trim_end_matches('-'))
    }

    /// Records a tenant the platform made.
    pub fn record(&self, id: &str) {
        self.made
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(id.to_owned());
    }

    /// The tenants made so far.
    pub fn made(&self) -> Vec<String> {
        self.made
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The tenants made so far, forgetting them (they are being released).
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.made.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// What became of a run's tenants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantRelease {
    /// What their ids start with.
    pub prefix: String,
    /// Every tenant made.
    pub made: Vec<String>,
    /// Those removed with the ecosystem (process and docker runtimes).
    pub gone: Vec<String>,
    /// Those suspended on the deployment.
    pub suspended: Vec<String>,
    /// Those left as they were, and why.
    pub left: Vec<String>,
    pub why_left: Option<String>,
}

impl TenantRelease {
    /// Tenants of an ecosystem whose database is thrown away with it.
    pub fn gone_with_ecosystem(made: Vec<String>, prefix: &str) -> TenantRelease {
        TenantRelease {
            prefix: prefix.to_owned(),
            gone: made.clone(),
            made,
            ..TenantRelease::default()
        }
    }

    /// Whether every tenant made was disposed of (none left behind).
    pub fn clean(&self) -> bool {
        self.left.is_empty()
    }

    /// One paragraph for the end of a run.
    pub fn describe(&self) -> String {
        let mut text = format!("tenants: made {} ({}-*)", self.made.len(), self.prefix);
        if !self.gone.is_empty() {
            text.push_str(&format!(
                "; {} removed with the ecosystem's database",
                self.gone.len()
            ));
        }
        if !self.suspended.is_empty() {
            text.push_str(&format!(
                "; {} suspended through the database (the contract's `stores.suspend-tenant`; the platform's admin API cannot delete or suspend a tenant)",
                self.suspended.len()
            ));
        }
        if !self.left.is_empty() {
            text.push_str(&format!(
                "; {} left on the deployment: {}",
                self.left.len(),
                self.why_left.as_deref().unwrap_or("")
            ));
            for id in &self.left {
                text.push_str("\n  left: ");
                text.push_str(id);
            }
        }
        text
    }
}

/// Disposes of `made` on an external deployment: kept when `keep`
/// (`--keep-tenants`), else suspended with the contract's
/// `stores.suspend-tenant` through `pool` (the database as its superuser),
/// else left, with `no_pool` (why there is no database) as the reason.
pub async fn release_tenants(
    made: Vec<String>,
    prefix: &str,
    keep: bool,
    pool: Option<&sqlx::PgPool>,
    no_pool: Option<&str>,
) -> TenantRelease {
    let mut release = TenantRelease {
        prefix: prefix.to_owned(),
        made: made.clone(),
        ..TenantRelease::default()
    };
    if made.is_empty() {
        return release;
    }
    if keep {
        release.left = made;
        release.why_left = Some("kept (--keep-tenants)".into());
        return release;
    }
    let Some(pool) = pool else {
        release.left = made;
        release.why_left = Some(format!(
            "the platform's admin API cannot delete or suspend a tenant, and the harness has no database to suspend them in ({}); give `[component.postgres] url` in the external file to have them suspended",
            no_pool.unwrap_or("no database")
        ));
        return release;
    };
    let Some(statement) = crate::contract::active().stores.suspend_tenant.as_deref() else {
        release.left = made;
        release.why_left = Some(
            "the platform's admin API cannot delete or suspend a tenant, and the contract gives no `stores.suspend-tenant` statement".into(),
        );
        return release;
    };
    let mut failures = Vec::new();
    for id in made {
        match sqlx::query(statement).bind(&id).execute(pool).await {
            Ok(_) => release.suspended.push(id),
            Err(e) => {
                failures.push(crate::env::error_chain(&e));
                release.left.push(id);
            }
        }
    }
    if let Some(first) = failures.first() {
        release.why_left = Some(format!(
            "suspending them failed ({} of them; the first: {first})",
            failures.len()
        ));
    }
    release
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_name_the_harness_and_the_run_and_fit_the_platform() {
        let ledger = TenantLedger::new("0123456789");
        let id = ledger.fresh_id(&"a very long tenant name ".repeat(5));
        assert!(
            id.starts_with("tekup-harness-0123456789-a-very-long"),
            "{id}"
        );
        assert!(id.len() <= 63, "{id} has {} characters", id.len());
        assert!(id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
        assert_ne!(ledger.fresh_id("x"), ledger.fresh_id("x"));
    }

    #[test]
    fn a_release_without_a_database_says_which_were_left_and_why() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let made = vec!["tekup-harness-r-a-1".to_owned()];
        let release = rt.block_on(release_tenants(
            made.clone(),
            "tekup-harness-r",
            false,
            None,
            Some("no URL for `postgres`"),
        ));
        assert_eq!(release.left, made);
        assert!(!release.clean());
        let text = release.describe();
        assert!(text.contains("made 1 (tekup-harness-r-*)"), "{text}");
        assert!(text.contains("cannot delete or suspend"), "{text}");
        assert!(text.contains("no URL for `postgres`"), "{text}");
        assert!(text.contains("left: tekup-harness-r-a-1"), "{text}");
        let kept = rt.block_on(release_tenants(made, "p", true, None, None));
        assert!(kept.describe().contains("kept (--keep-tenants)"));
    }
}
