//! Tenants, their API keys, and the permission matrix: seeding from
//! `fixtures/tenants.yaml` and creating fresh tenants on demand (the harness
//! creates one per scenario run).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;

use rand::distributions::{Alphanumeric, DistString};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::auth::keys::ApiKey;

/// The seed file: the permission matrix and the tenants with their keys.
/// The matrix normally comes from the platform's contract
/// (`fixtures/platform.yaml`, see [`SeedFile::load_with_contract`]).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SeedFile {
    /// app → service (or `*`) → permissions. Replaces the stored matrix when present.
    #[serde(default)]
    pub permissions: BTreeMap<String, BTreeMap<String, Vec<String>>>,
    #[serde(default)]
    pub tenants: Vec<TenantSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TenantSpec {
    pub id: String,
    pub name: String,
    #[serde(default = "yes")]
    pub active: bool,
    pub allowed_apps: Vec<String>,
    #[serde(default = "default_rate_limit")]
    pub rate_limit_per_minute: i32,
    #[serde(default)]
    pub keys: Vec<KeySpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct KeySpec {
    /// The full key, `tk_<id>_<secret>` (test fixtures keep keys in clear).
    pub key: String,
    #[serde(default)]
    pub label: String,
    #[serde(default = "yes")]
    pub active: bool,
}

fn yes() -> bool {
    true
}

fn default_rate_limit() -> i32 {
    6000
}

/// Errors of seeding and tenant creation.
#[derive(Debug, thiserror::Error)]
pub enum TenantError {
    #[error("failed to read {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: String,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("database error")]
    Database(#[from] sqlx::Error),
}

fn valid_tenant_id(id: &str) -> bool {
    let mut chars = id.chars();
    id.len() <= 63
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// The part of the platform's contract (`fixtures/platform.yaml`) the
/// services store: its permission matrix. The rest of the file is the
/// harness's business.
#[derive(Debug, Deserialize)]
struct ContractMatrix {
    permissions: BTreeMap<String, BTreeMap<String, Vec<String>>>,
}

impl SeedFile {
    /// The seed at `seed` (if any) with the permission matrix of the
    /// contract at `contract` (if any). The matrix is given in one place:
    /// a seed file that has one too is refused.
    pub fn load_with_contract(
        seed: Option<&Path>,
        contract: Option<&Path>,
    ) -> Result<Self, TenantError> {
        let mut out = seed.map(Self::load).transpose()?.unwrap_or_default();
        let Some(contract) = contract else {
            return Ok(out);
        };
        let shown = contract.display().to_string();
        let text = std::fs::read_to_string(contract).map_err(|source| TenantError::Read {
            path: shown.clone(),
            source,
        })?;
        let matrix: ContractMatrix =
            serde_yaml::from_str(&text).map_err(|source| TenantError::Parse {
                path: shown.clone(),
                source,
            })?;
        if !out.permissions.is_empty() {
            return Err(TenantError::Invalid(format!(
                "both the seed file and the contract {shown} give a permission matrix; keep it in the contract only"
            )));
        }
        out.permissions = matrix.permissions;
        out.check()
            .map_err(|e| TenantError::Invalid(format!("{shown} with the seed: {e}")))?;
        Ok(out)
    }

    /// Reads and checks a seed file; errors name the file and, from the
    /// YAML parser, the line and column.
    pub fn load(path: &Path) -> Result<Self, TenantError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| TenantError::Read {
            path: shown.clone(),
            source,
        })?;
        let seed: Self = serde_yaml::from_str(&text).map_err(|source| TenantError::Parse {
            path: shown.clone(),
            source,
        })?;
        seed.check()
            .map_err(|e| TenantError::Invalid(format!("{shown}: {e}")))?;
        Ok(seed)
    }

    fn check(&self) -> Result<(), String> {
        let mut tenant_ids = HashSet::new();
        let mut key_ids = HashSet::new();
        for (i, tenant) in self.tenants.iter().enumerate() {
            let at = format!("tenants[{i}] ({})", tenant.id);
            if !valid_tenant_id(&tenant.id) {
                return Err(format!(
                    "{at}: id must be lower-case letters, digits and `-`"
                ));
            }
            if !tenant_ids.insert(&tenant.id) {
                return Err(format!("{at}: duplicate tenant id"));
            }
            if let Some(app) = tenant
                .allowed_apps
                .iter()
                .find(|a| !self.permissions.is_empty() && !self.permissions.contains_key(*a))
            {
                return Err(format!(
                    "{at}: allowed app `{app}` is not in the permission matrix"
                ));
            }
            for (j, key) in tenant.keys.iter().enumerate() {
                let parsed = ApiKey::parse(&key.key).map_err(|e| format!("{at}.keys[{j}]: {e}"))?;
                if !key_ids.insert(parsed.key_id) {
                    return Err(format!("{at}.keys[{j}]: duplicate key id"));
                }
            }
        }
        Ok(())
    }
}

/// Writes the seed into the database (idempotent: rerunning updates in place).
pub async fn seed(db: &PgPool, seed: &SeedFile) -> Result<(), TenantError> {
    let mut tx = db.begin().await?;
    if !seed.permissions.is_empty() {
        sqlx::query("DELETE FROM auth.app_grants")
            .execute(&mut *tx)
            .await?;
        for (app, services) in &seed.permissions {
            for (service, perms) in services {
                for perm in perms {
                    sqlx::query("INSERT INTO auth.app_grants (app, service, permission) VALUES ($1, $2, $3)")
                        .bind(app)
                        .bind(service)
                        .bind(perm)
                        .execute(&mut *tx)
                        .await?;
                }
            }
        }
    }
    for tenant in &seed.tenants {
        sqlx::query(
            "INSERT INTO auth.tenants (id, name, active, allowed_apps, rate_limit_per_minute)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (id) DO UPDATE SET name = $2, active = $3, allowed_apps = $4, rate_limit_per_minute = $5",
        )
        .bind(&tenant.id)
        .bind(&tenant.name)
        .bind(tenant.active)
        .bind(&tenant.allowed_apps)
        .bind(tenant.rate_limit_per_minute)
        .execute(&mut *tx)
        .await?;
        for key in &tenant.keys {
            let parsed =
                ApiKey::parse(&key.key).map_err(|e| TenantError::Invalid(e.to_string()))?;
            sqlx::query(
                "INSERT INTO auth.api_keys (key_id, tenant_id, secret_sha256, label, active)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (key_id) DO UPDATE SET tenant_id = $2, secret_sha256 = $3, label = $4, active = $5",
            )
            .bind(&parsed.key_id)
            .bind(&tenant.id)
            .bind(parsed.secret_sha256())
            .bind(&key.label)
            .bind(key.active)
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// What to create with [`create_tenant`].
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(description = "A tenant to create; every field has a default.")]
pub struct NewTenant {
    /// Defaults to a random `t-…` id.
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,62}$")]
    pub id: Option<String>,
    pub name: Option<String>,
    /// Defaults to every app of the permission matrix except the services'
    /// own identities.
    pub allowed_apps: Option<Vec<String>>,
    /// Requests per minute (default 6000).
    #[schema(minimum = 1)]
    pub rate_limit_per_minute: Option<i32>,
    /// How many API keys to issue (default 1).
    #[schema(minimum = 1, maximum = 20)]
    pub keys: Option<usize>,
}

/// A created tenant, with its keys in clear: the only time they are shown.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedTenant {
    pub id: String,
    pub name: String,
    pub allowed_apps: Vec<String>,
    pub rate_limit_per_minute: i32,
    pub api_keys: Vec<String>,
}

/// Creates a tenant with fresh API keys.
pub async fn create_tenant(db: &PgPool, new: NewTenant) -> Result<CreatedTenant, TenantError> {
    let id = match new.id {
        Some(id) if valid_tenant_id(&id) => id,
        Some(id) => {
            return Err(TenantError::Invalid(format!(
                "tenant id {id:?} must be at most 63 lower-case letters, digits and `-`"
            )))
        }
        None => format!(
            "t-{}",
            Alphanumeric
                .sample_string(&mut rand::thread_rng(), 12)
                .to_ascii_lowercase()
        ),
    };
    let key_count = new.keys.unwrap_or(1);
    if !(1..=20).contains(&key_count) {
        return Err(TenantError::Invalid(
            "`keys` must be between 1 and 20".into(),
        ));
    }
    let rate_limit = new.rate_limit_per_minute.unwrap_or_else(default_rate_limit);
    if rate_limit <= 0 {
        return Err(TenantError::Invalid(
            "`rateLimitPerMinute` must be positive".into(),
        ));
    }
    let allowed_apps = match new.allowed_apps {
        Some(apps) => apps,
        None => {
            // The matrix's apps, less the services' own identities.
            let apps: BTreeSet<String> =
                sqlx::query_scalar("SELECT DISTINCT app FROM auth.app_grants")
                    .fetch_all(db)
                    .await?
                    .into_iter()
                    .filter(|app: &String| !crate::auth::SERVICE_IDENTITIES.contains(&app.as_str()))
                    .collect();
            apps.into_iter().collect()
        }
    };
    let name = new.name.unwrap_or_else(|| id.clone());
    let mut tx = db.begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO auth.tenants (id, name, allowed_apps, rate_limit_per_minute)
         VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING",
    )
    .bind(&id)
    .bind(&name)
    .bind(&allowed_apps)
    .bind(rate_limit)
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(TenantError::Invalid(format!(
            "tenant {id:?} already exists"
        )));
    }
    let mut api_keys = Vec::with_capacity(key_count);
    for i in 0..key_count {
        let key = ApiKey::generate();
        sqlx::query("INSERT INTO auth.api_keys (key_id, tenant_id, secret_sha256, label) VALUES ($1, $2, $3, $4)")
            .bind(&key.key_id)
            .bind(&id)
            .bind(key.secret_sha256())
            .bind(format!("generated-{i}"))
            .execute(&mut *tx)
            .await?;
        api_keys.push(key.expose());
    }
    tx.commit().await?;
    Ok(CreatedTenant {
        id,
        name,
        allowed_apps,
        rate_limit_per_minute: rate_limit,
        api_keys,
    })
}
