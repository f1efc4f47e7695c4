//! API keys: how they are made, written, presented and checked.
//!
//! A key is `slk_{id}_{secret}`: the id (16 hex digits) finds its record, the secret (64 hex
//! digits, 256 random bits) proves it. A Langfuse key pair is `pk-lf-{id}` and `sk-lf-{secret}`,
//! sent as HTTP Basic credentials the way Langfuse's SDKs send them. The record keeps a
//! SHA-256 of the secret: with 256 random bits there is nothing to guess, so a slow hash
//! would only slow every request down.

use crate::{Quota, Scope};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// How a key starts.
pub const KEY_PREFIX: &str = "slk_";
/// How a Langfuse public key starts.
pub const LANGFUSE_PUBLIC_PREFIX: &str = "pk-lf-";
/// How a Langfuse secret key starts.
pub const LANGFUSE_SECRET_PREFIX: &str = "sk-lf-";
/// Longest key name, characters.
const MAX_NAME_CHARS: usize = 100;

/// A key as stored: everything but its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    /// 16 hex digits, unique; shown in lists and used to revoke the key.
    pub id: String,
    /// What the key is for, as its maker named it.
    pub name: String,
    /// The project it reads and writes.
    pub project: String,
    /// What it may do there.
    pub scopes: Vec<Scope>,
    /// SHA-256 of the secret, hex.
    pub secret_sha256: String,
    /// When it was made, ns since the epoch.
    pub created_ns: i64,
    /// When it was revoked; a revoked key is refused.
    #[serde(default)]
    pub revoked_ns: Option<i64>,
    /// Made as a Langfuse public/secret pair.
    #[serde(default)]
    pub langfuse: bool,
    /// How much it may send (besides its project's quota).
    #[serde(default, skip_serializing_if = "Quota::is_unlimited")]
    pub quota: Quota,
}

/// A key as lists show it (never its secret or hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyView {
    /// Its id.
    pub id: String,
    /// How it starts (`slk_{id}` or `pk-lf-{id}`), to recognise it.
    pub prefix: String,
    /// Its name.
    pub name: String,
    /// Its project.
    pub project: String,
    /// Its scopes.
    pub scopes: Vec<Scope>,
    /// When it was made, ns since the epoch.
    pub created_ns: i64,
    /// When it was last accepted (to within a minute), if ever.
    pub last_used_ns: Option<i64>,
    /// When it was revoked.
    pub revoked_ns: Option<i64>,
    /// Whether it is a Langfuse key pair.
    pub langfuse: bool,
    /// How much it may send.
    #[serde(default, skip_serializing_if = "Quota::is_unlimited")]
    pub quota: Quota,
}

/// A key just made: the only time its secret exists outside the client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewKey {
    /// The key as lists show it.
    pub view: KeyView,
    /// The key to send (`slk_…`), or for a Langfuse pair its secret key (`sk-lf-…`).
    pub secret: String,
    /// For a Langfuse pair, its public key (`pk-lf-…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
}

/// A key that cannot be made as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// No scope given.
    #[error("a key needs at least one scope (ingest, read or admin)")]
    NoScope,
    /// A Langfuse pair only sends data.
    #[error("a Langfuse key pair sends spans: give it the ingest scope only")]
    LangfuseScope,
    /// The name is too long or holds control characters.
    #[error("key name: at most {MAX_NAME_CHARS} characters, no control characters")]
    BadName,
    /// The project name is not one a project can have.
    #[error("project: {0}")]
    BadProject(String),
    /// A quota that would refuse everything.
    #[error("quota: {0}")]
    BadQuota(String),
    /// The system gave no random bytes.
    #[error("no randomness available: {0}")]
    Random(String),
}

/// What a request presented: the id of a key and the secret that should prove it.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// The key's id.
    pub id: String,
    secret: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credential({})", self.id)
    }
}

fn random_hex(bytes: usize) -> Result<String, KeyError> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| KeyError::Random(e.to_string()))?;
    Ok(hex::encode(buf))
}

fn sha256_hex(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl ApiKey {
    /// Makes a key for `project` with `scopes` (`langfuse`: a public/secret pair): the record
    /// to store, and what to show its maker once.
    pub fn generate(
        project: &str,
        name: &str,
        scopes: &[Scope],
        langfuse: bool,
    ) -> Result<(ApiKey, NewKey), KeyError> {
        spanlens_core::limits::check_project(project).map_err(KeyError::BadProject)?;
        if project.trim().is_empty() {
            return Err(KeyError::BadProject("a project name is needed".into()));
        }
        let mut scopes = scopes.to_vec();
        scopes.sort();
        scopes.dedup();
        if scopes.is_empty() {
            return Err(KeyError::NoScope);
        }
        if langfuse && scopes != [Scope::Ingest] {
            return Err(KeyError::LangfuseScope);
        }
        if name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
            return Err(KeyError::BadName);
        }
        let id = random_hex(8)?;
        let secret = random_hex(32)?;
        let key = ApiKey {
            name: if name.trim().is_empty() {
                scopes
                    .iter()
                    .map(|s| s.name())
                    .collect::<Vec<_>>()
                    .join("+")
            } else {
                name.trim().to_string()
            },
            project: project.to_string(),
            scopes,
            secret_sha256: sha256_hex(&secret),
            created_ns: crate::now_ns(),
            revoked_ns: None,
            langfuse,
            quota: Quota::default(),
            id,
        };
        let (secret, public_key) = if langfuse {
            (
                format!("{LANGFUSE_SECRET_PREFIX}{secret}"),
                Some(key.prefix()),
            )
        } else {
            (format!("{KEY_PREFIX}{}_{secret}", key.id), None)
        };
        let new = NewKey {
            view: key.view(None),
            secret,
            public_key,
        };
        Ok((key, new))
    }

    /// How the key starts, to recognise it in a list.
    pub fn prefix(&self) -> String {
        if self.langfuse {
            format!("{LANGFUSE_PUBLIC_PREFIX}{}", self.id)
        } else {
            format!("{KEY_PREFIX}{}", self.id)
        }
    }

    /// Whether `credential` proves this key (in constant time).
    pub fn proven_by(&self, credential: &Credential) -> bool {
        credential.id == self.id
            && bool::from(
                sha256_hex(&credential.secret)
                    .as_bytes()
                    .ct_eq(self.secret_sha256.as_bytes()),
            )
    }

    /// The key as lists show it.
    pub fn view(&self, last_used_ns: Option<i64>) -> KeyView {
        KeyView {
            id: self.id.clone(),
            prefix: self.prefix(),
            name: self.name.clone(),
            project: self.project.clone(),
            scopes: self.scopes.clone(),
            created_ns: self.created_ns,
            last_used_ns,
            revoked_ns: self.revoked_ns,
            langfuse: self.langfuse,
            quota: self.quota,
        }
    }
}

impl Credential {
    /// A key as sent in `Authorization: Bearer …` or `x-api-key` (`slk_{id}_{secret}`).
    pub fn from_token(token: &str) -> Option<Credential> {
        let rest = token.trim().strip_prefix(KEY_PREFIX)?;
        let (id, secret) = rest.split_once('_')?;
        (is_hex(id, 16) && is_hex(secret, 64)).then(|| Credential {
            id: id.to_string(),
            secret: secret.to_string(),
        })
    }

    /// A Langfuse pair as HTTP Basic credentials: `pk-lf-{id}` and `sk-lf-{secret}`.
    pub fn from_langfuse(public_key: &str, secret_key: &str) -> Option<Credential> {
        let id = public_key.trim().strip_prefix(LANGFUSE_PUBLIC_PREFIX)?;
        let secret = secret_key.trim().strip_prefix(LANGFUSE_SECRET_PREFIX)?;
        (is_hex(id, 16) && is_hex(secret, 64)).then(|| Credential {
            id: id.to_string(),
            secret: secret.to_string(),
        })
    }

    /// The credential of an `Authorization` header value (`Bearer …` or `Basic …`).
    pub fn from_authorization(value: &str) -> Option<Credential> {
        let (scheme, rest) = value.trim().split_once(' ')?;
        if scheme.eq_ignore_ascii_case("bearer") {
            Credential::from_token(rest)
        } else if scheme.eq_ignore_ascii_case("basic") {
            use base64::Engine;
            let raw = base64::engine::general_purpose::STANDARD
                .decode(rest.trim())
                .ok()?;
            let text = String::from_utf8(raw).ok()?;
            let (user, pass) = text.split_once(':')?;
            Credential::from_langfuse(user, pass)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_key_is_proven_by_its_own_secret_only() {
        let (key, new) = ApiKey::generate("shop", "ci", &[Scope::Ingest], false).unwrap();
        assert!(new.secret.starts_with("slk_"));
        let cred = Credential::from_authorization(&format!("Bearer {}", new.secret)).unwrap();
        assert_eq!(cred.id, key.id);
        assert!(key.proven_by(&cred));
        let (other, _) = ApiKey::generate("shop", "ci", &[Scope::Ingest], false).unwrap();
        assert_ne!(other.id, key.id);
        assert!(!other.proven_by(&cred));
        // The same id with another secret.
        let forged = format!("slk_{}_{}", key.id, "0".repeat(64));
        assert!(!key.proven_by(&Credential::from_token(&forged).unwrap()));
        assert!(!key.secret_sha256.contains(&new.secret[21..]));
        assert_eq!(new.view.name, "ci");
        assert_eq!(new.view.prefix, format!("slk_{}", key.id));
    }

    #[test]
    fn a_langfuse_pair_is_read_from_basic_auth() {
        use base64::Engine;
        let (key, new) = ApiKey::generate("shop", "", &[Scope::Ingest], true).unwrap();
        let public = new.public_key.clone().unwrap();
        assert!(public.starts_with("pk-lf-") && new.secret.starts_with("sk-lf-"));
        let basic =
            base64::engine::general_purpose::STANDARD.encode(format!("{public}:{}", new.secret));
        let cred = Credential::from_authorization(&format!("Basic {basic}")).unwrap();
        assert!(key.proven_by(&cred));
        assert_eq!(new.view.name, "ingest");
        assert_eq!(
            ApiKey::generate("shop", "", &[Scope::Read], true).unwrap_err(),
            KeyError::LangfuseScope
        );
    }

    #[test]
    fn malformed_credentials_and_requests_are_refused() {
        for bad in [
            "",
            "Bearer",
            "Bearer slk_",
            "Bearer slk_xyz_abc",
            "Bearer sk-proj-abc",
            "Token slk_0123456789abcdef_00",
            "Basic !!!",
            "Basic dXNlcjpwYXNz",
        ] {
            assert!(Credential::from_authorization(bad).is_none(), "{bad}");
        }
        assert_eq!(
            ApiKey::generate("shop", "", &[], false).unwrap_err(),
            KeyError::NoScope
        );
        assert!(matches!(
            ApiKey::generate("", "", &[Scope::Read], false),
            Err(KeyError::BadProject(_))
        ));
        assert_eq!(
            ApiKey::generate("p", "a\nb", &[Scope::Read], false).unwrap_err(),
            KeyError::BadName
        );
        let both =
            ApiKey::generate("p", "", &[Scope::Read, Scope::Admin, Scope::Read], false).unwrap();
        assert_eq!(both.0.scopes, [Scope::Read, Scope::Admin]);
    }
}
