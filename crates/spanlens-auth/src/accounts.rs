//! People who sign in to the UI: a name, an Argon2id password hash, and a role per project.
//! Sessions are random tokens kept as a SHA-256 (like keys), each with its own CSRF token.

use crate::Scope;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Shortest password accepted, characters.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// Longest password accepted, bytes (hashing is memory-hard, not length-bound, but a
/// megabyte-long "password" is an attack, not a secret).
const MAX_PASSWORD_BYTES: usize = 1024;
/// How long a sign-in lasts.
pub const SESSION_TTL_NS: i64 = 12 * 3600 * 1_000_000_000;

/// What a person may do in one project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads everything in the project.
    Viewer,
    /// Reads, and sends spans and scores.
    Member,
    /// Everything, and the project's keys, people, settings and deletions.
    Admin,
}

impl Role {
    /// The scopes the role holds.
    pub fn scopes(self) -> &'static [Scope] {
        match self {
            Role::Viewer => &[Scope::Read],
            Role::Member => &[Scope::Read, Scope::Ingest],
            Role::Admin => &[Scope::Admin],
        }
    }

    /// The role's name.
    pub fn name(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Member => "member",
            Role::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Role, String> {
        [Role::Viewer, Role::Member, Role::Admin]
            .into_iter()
            .find(|r| r.name() == s.trim())
            .ok_or_else(|| format!("role {s:?}: use viewer, member or admin"))
    }
}

/// A person as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// The sign-in name.
    pub name: String,
    /// Argon2id, as a PHC string (parameters and salt included).
    pub password_phc: String,
    /// Project → role.
    pub roles: BTreeMap<String, Role>,
    /// When it was made, ns since the epoch.
    pub created_ns: i64,
}

/// A person as lists show them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountView {
    /// The sign-in name.
    pub name: String,
    /// Project → role.
    pub roles: BTreeMap<String, Role>,
    /// When it was made, ns since the epoch.
    pub created_ns: i64,
}

impl Account {
    /// The account as lists show it.
    pub fn view(&self) -> AccountView {
        AccountView {
            name: self.name.clone(),
            roles: self.roles.clone(),
            created_ns: self.created_ns,
        }
    }

    /// Whether the account may do what `needs` guards in `project`.
    pub fn allows(&self, project: &str, needs: Scope) -> bool {
        self.roles
            .get(project)
            .is_some_and(|r| needs.allowed_by(r.scopes()))
    }
}

/// An account that cannot be made or changed as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    /// A name that is empty, long, or not letters, digits and `.-_@`.
    #[error("account name {0:?}: 1 to 64 letters, digits, '.', '-', '_' or '@'")]
    BadName(String),
    /// A password that is too short or too long.
    #[error("password: at least {MIN_PASSWORD_CHARS} characters (at most 1024 bytes)")]
    WeakPassword,
    /// The name is taken.
    #[error("account {0:?} exists already")]
    Exists(String),
    /// No such account.
    #[error("no account {0:?}")]
    Unknown(String),
    /// The project name is not one a project can have.
    #[error("project: {0}")]
    BadProject(String),
    /// Hashing failed.
    #[error("password hashing failed: {0}")]
    Hash(String),
}

/// Checks a sign-in name.
pub fn check_name(name: &str) -> Result<(), AccountError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | '@'));
    if ok {
        Ok(())
    } else {
        Err(AccountError::BadName(name.chars().take(80).collect()))
    }
}

/// Checks a project name for a role.
pub fn check_project(project: &str) -> Result<(), AccountError> {
    spanlens_core::limits::check_project(project).map_err(AccountError::BadProject)?;
    if project.trim().is_empty() {
        return Err(AccountError::BadProject("a project name is needed".into()));
    }
    Ok(())
}

/// The Argon2id hash of `password` (memory-hard: 19 MiB, 2 passes, the crate's defaults,
/// which are OWASP's minimum), or why the password is refused.
pub fn hash_password(password: &str) -> Result<String, AccountError> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    if password.chars().count() < MIN_PASSWORD_CHARS || password.len() > MAX_PASSWORD_BYTES {
        return Err(AccountError::WeakPassword);
    }
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| AccountError::Hash(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| AccountError::Hash(e.to_string()))?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AccountError::Hash(e.to_string()))
}

/// Whether `password` matches the PHC string `phc`. A malformed hash never matches.
pub fn verify_password(phc: &str, password: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    if password.len() > MAX_PASSWORD_BYTES {
        return false;
    }
    PasswordHash::new(phc).is_ok_and(|h| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// A hash to verify against when the account does not exist, so a wrong name takes as long
/// as a wrong password and names cannot be told apart by timing.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("not a password of anyone").unwrap_or_default())
}

/// A signed-in browser, as stored under the SHA-256 of its cookie's token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Whose.
    pub account: String,
    /// Until when, ns since the epoch.
    pub expires_ns: i64,
    /// What state-changing requests of this session must send in `x-csrf-token`.
    pub csrf: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hashed_salted_and_checked() {
        let a = hash_password("correct horse battery").unwrap();
        let b = hash_password("correct horse battery").unwrap();
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b, "salted");
        assert!(verify_password(&a, "correct horse battery"));
        assert!(!verify_password(&a, "correct horse batterY"));
        assert!(!verify_password("not a hash", "correct horse battery"));
        assert_eq!(
            hash_password("short").unwrap_err(),
            AccountError::WeakPassword
        );
        assert!(!verify_password(decoy_hash(), ""));
    }

    #[test]
    fn roles_grant_their_scopes_in_their_project_only() {
        let acc = Account {
            name: "ana".into(),
            password_phc: String::new(),
            roles: [("shop".to_string(), Role::Member)].into(),
            created_ns: 0,
        };
        assert!(acc.allows("shop", Scope::Read) && acc.allows("shop", Scope::Ingest));
        assert!(!acc.allows("shop", Scope::Admin));
        assert!(!acc.allows("blog", Scope::Read));
        assert!("owner"
            .parse::<Role>()
            .unwrap_err()
            .contains("viewer, member or admin"));
        assert!(check_name("ana.b@x").is_ok());
        assert!(check_name("a b").is_err() && check_name("").is_err());
    }
}
