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
