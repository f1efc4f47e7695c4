//! What a project's admins manage: `/api/v1/keys` and `/api/v1/projects/{project}/…`.

use serde::{Deserialize, Serialize};
pub use spanlens_auth::{KeyView, NewKey, Scope};
pub use spanlens_core::redact::{RedactionRule, RedactionSettings};

/// `GET /api/v1/keys`: the project's keys, revoked ones too, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeysAnswer {
    /// The keys (never their secrets).
    pub keys: Vec<KeyView>,
}

/// `POST /api/v1/keys`: a key to make. The answer (201) is a [`NewKey`], the only time its
/// secret is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// Its project; with a key, the key's own (the default).
    #[serde(default)]
    pub project: Option<String>,
    /// What it is for.
    #[serde(default)]
    pub name: Option<String>,
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// A Langfuse public/secret pair (ingest only) instead of a `slk_` key.
    #[serde(default)]
    pub langfuse: bool,
    /// How much it may send (besides its project's quota).
    #[serde(default)]
    pub quota: spanlens_auth::Quota,
}

/// `DELETE /api/v1/keys/{id}`: the key as it is now, revoked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedKey {
    /// The key.
    pub key: KeyView,
}

/// `GET` and `PUT /api/v1/projects/{project}/redaction`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedactionAnswer {
    /// The project.
    pub project: String,
    /// What the project saved (`PUT` replaces it; an empty object removes it).
    pub settings: RedactionSettings,
    /// What the server applies to every project besides (`serve --redact …`).
    pub server: RedactionSettings,
}

pub use spanlens_auth::{AccountView, Role};

/// `GET`, `POST` (sign in) and `DELETE` (sign out) `/api/v1/session`: who the browser is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignInState {
    /// `required` (sign-in or a key needed) or `off`.
    pub auth: String,
    /// The signed-in account, if any.
    pub account: Option<String>,
    /// Its roles by project.
    pub roles: std::collections::BTreeMap<String, Role>,
    /// What state-changing requests of this session send in `x-csrf-token`.
    pub csrf: Option<String>,
}

/// `POST /api/v1/session`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    /// The account name.
    pub name: String,
    /// Its password.
    pub password: String,
}

/// `GET /api/v1/accounts`: the people with a role in the project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountsAnswer {
    /// By name.
    pub accounts: Vec<AccountView>,
}

/// `POST /api/v1/accounts`: a person to add with a role in the project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateAccount {
    /// Sign-in name.
    pub name: String,
    /// Password (at least 10 characters); only its Argon2id hash is kept.
    pub password: String,
    /// Role in the project.
    pub role: Role,
    /// The project (with a sign-in or key, the one the call is bound to).
    #[serde(default)]
    pub project: Option<String>,
}

/// `PUT /api/v1/accounts/{name}`: a person's role in the project (`null` removes it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetRole {
    /// The new role, or none.
    pub role: Option<Role>,
}

pub use spanlens_auth::AuditEntry;

/// `GET /api/v1/audit`: the project's admin actions, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditAnswer {
    /// The entries.
    pub entries: Vec<AuditEntry>,
}

/// How long a project keeps its data (`GET`/`PUT /api/v1/projects/{project}/retention`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSettings {
    /// Days a trace is kept after its last span ended; then it is deleted whole. None: forever.
    #[serde(default)]
    pub days: Option<u32>,
    /// Days inputs, outputs and messages are kept; then they are cleared and the spans (times,
    /// tokens, cost) stay. None: as long as the trace.
    #[serde(default)]
    pub payload_days: Option<u32>,
}

/// What the last sweep of a project did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepReport {
    /// When it started, ns since the epoch.
    pub started_ns: i64,
    /// When it ended.
    pub finished_ns: i64,
    /// What it removed and cleared.
    pub erased: spanlens_store::Erased,
}

/// `GET` and `PUT /api/v1/projects/{project}/retention`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionAnswer {
    /// The project.
    pub project: String,
    /// Its retention.
    pub settings: RetentionSettings,
    /// The last sweep that found something to do, if any.
    pub last_sweep: Option<SweepReport>,
}

pub use spanlens_auth::Quota;

/// What one key's or project's meter on this server has seen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaUsage {
    /// Bytes received today (UTC), after decompression.
    pub bytes_today: u64,
    /// Spans admitted since the server started.
    pub spans: u64,
    /// Requests refused for the quota since the server started (429).
    pub throttled_requests: u64,
    /// Spans in those requests.
    pub throttled_spans: u64,
}

/// A key's quota and usage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyQuota {
    /// The key's id.
    pub id: String,
    /// Its prefix.
    pub prefix: String,
    /// Its name.
    pub name: String,
    /// Its quota.
    pub quota: Quota,
    /// What it sent.
    pub usage: QuotaUsage,
}

/// `GET` and `PUT /api/v1/projects/{project}/quota`: the project's quota and what it and its
/// keys with quotas sent, on this server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaAnswer {
    /// The project.
    pub project: String,
    /// Its quota (`PUT` replaces it; `{}` removes it).
    pub quota: Quota,
    /// What it sent.
    pub usage: QuotaUsage,
    /// Its keys that have a quota of their own.
    pub keys: Vec<KeyQuota>,
}
