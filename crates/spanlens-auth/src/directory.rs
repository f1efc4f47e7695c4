//! Keys, accounts and sessions kept in the store's shared state: one document per key
//! (`apikey:{id}`) with the time it was last used apart from it (`apikey-used:{id}`, so
//! recording a use never races with a revocation), one per account (`account:{name}`), one per
//! session under the SHA-256 of its token (`session:{hash}`).

use crate::accounts::{self, Account, AccountError, AccountView, Role, Session};
use crate::keys::{ApiKey, Credential, KeyError, KeyView, NewKey};
use crate::Scope;
use spanlens_store::{Store, StoreError};
use std::collections::HashMap;
use std::sync::Arc;

const KEY: &str = "apikey:";
const USED: &str = "apikey-used:";
const ACCOUNT: &str = "account:";
const SESSION: &str = "session:";

/// The keys of every project on one store.
#[derive(Clone)]
pub struct Directory {
    store: Arc<dyn Store>,
}

/// Why the directory could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// The key cannot be made as asked.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The account cannot be made or changed as asked.
    #[error(transparent)]
    Account(#[from] AccountError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored key document is not readable (damaged, or from a newer version).
    #[error("stored key {id}: {reason}")]
    Damaged {
        /// The key's id.
        id: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl Directory {
    /// The keys kept in `store`.
    pub fn new(store: Arc<dyn Store>) -> Directory {
        Directory { store }
    }

    /// Makes and stores a key; its secret is in the answer and nowhere else.
    pub async fn create(
        &self,
        project: &str,
        name: &str,
        scopes: &[Scope],
        langfuse: bool,
    ) -> Result<NewKey, DirectoryError> {
        self.create_with_quota(project, name, scopes, langfuse, crate::Quota::default())
            .await
    }

    /// [`Directory::create`] with a quota of its own.
    pub async fn create_with_quota(
        &self,
        project: &str,
        name: &str,
        scopes: &[Scope],
        langfuse: bool,
        quota: crate::Quota,
    ) -> Result<NewKey, DirectoryError> {
        quota.check().map_err(KeyError::BadQuota)?;
        let (mut key, mut new) = ApiKey::generate(project, name, scopes, langfuse)?;
        key.quota = quota;
        new.view.quota = quota;
        self.save(&key).await?;
        Ok(new)
    }

    async fn save(&self, key: &ApiKey) -> Result<(), DirectoryError> {
        let doc = serde_json::to_string(key).map_err(|e| DirectoryError::Damaged {
            id: key.id.clone(),
            reason: e.to_string(),
        })?;
        self.store
            .save_state(&format!("{KEY}{}", key.id), &doc)
            .await?;
        Ok(())
    }

    /// The key with this id, if there is one.
    pub async fn get(&self, id: &str) -> Result<Option<ApiKey>, DirectoryError> {
        if id.is_empty() || id.len() > 64 {
            return Ok(None);
        }
        match self.store.load_state(&format!("{KEY}{id}")).await? {
            None => Ok(None),
            Some(doc) => {
                serde_json::from_str(&doc)
                    .map(Some)
                    .map_err(|e| DirectoryError::Damaged {
                        id: id.to_string(),
                        reason: e.to_string(),
                    })
            }
        }
    }

    /// The key `credential` proves, when it does and is not revoked.
    pub async fn authenticate(
        &self,
        credential: &Credential,
    ) -> Result<Option<ApiKey>, DirectoryError> {
        Ok(self
            .get(&credential.id)
            .await?
            .filter(|k| k.revoked_ns.is_none() && k.proven_by(credential)))
    }

    /// Every key of `project` (all projects: `None`), revoked ones too, oldest first. A
    /// damaged document is left out with a warning rather than hiding every other key.
    pub async fn list(&self, project: Option<&str>) -> Result<Vec<KeyView>, DirectoryError> {
        let used: HashMap<String, i64> = self
            .store
            .list_state(USED)
            .await?
            .into_iter()
            .filter_map(|(k, v)| Some((k[USED.len()..].to_string(), v.parse().ok()?)))
            .collect();
        let mut out = Vec::new();
        for (k, doc) in self.store.list_state(KEY).await? {
            let key: ApiKey = match serde_json::from_str(&doc) {
                Ok(key) => key,
                Err(e) => {
                    tracing::warn!(key = %k, error = %e, "stored key unreadable; left out");
                    continue;
                }
            };
            if project.is_none_or(|p| p == key.project) {
                out.push(key.view(used.get(&key.id).copied()));
            }
        }
        out.sort_by(|a, b| (a.created_ns, &a.id).cmp(&(b.created_ns, &b.id)));
        Ok(out)
    }

    /// Revokes the key `id` of `project` (any project: `None`); `None` when there is no such
    /// key. Revoking twice keeps the first time.
    pub async fn revoke(
        &self,
        project: Option<&str>,
        id: &str,
    ) -> Result<Option<KeyView>, DirectoryError> {
        let Some(mut key) = self.get(id).await? else {
            return Ok(None);
        };
        if project.is_some_and(|p| p != key.project) {
            return Ok(None);
        }
        if key.revoked_ns.is_none() {
            key.revoked_ns = Some(crate::now_ns());
            self.save(&key).await?;
        }
        Ok(Some(key.view(None)))
    }

    /// Records that key `id` was accepted at `ns`.
    pub async fn record_use(&self, id: &str, ns: i64) -> Result<(), DirectoryError> {
        self.store
            .save_state(&format!("{USED}{id}"), &ns.to_string())
            .await?;
        Ok(())
    }

    async fn load<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<T>, DirectoryError> {
        match self.store.load_state(key).await? {
            None => Ok(None),
            Some(doc) => {
                serde_json::from_str(&doc)
                    .map(Some)
                    .map_err(|e| DirectoryError::Damaged {
                        id: key.to_string(),
                        reason: e.to_string(),
                    })
            }
        }
    }

    async fn store_doc<T: serde::Serialize>(&self, key: &str, v: &T) -> Result<(), DirectoryError> {
        let doc = serde_json::to_string(v).map_err(|e| DirectoryError::Damaged {
            id: key.to_string(),
            reason: e.to_string(),
        })?;
        self.store.save_state(key, &doc).await?;
        Ok(())
    }

    /// Makes an account with `role` in `project`; its password is hashed (Argon2id) before
    /// anything is stored. Refused when the name is taken.
    pub async fn create_account(
        &self,
        name: &str,
        password: &str,
        project: &str,
        role: Role,
    ) -> Result<AccountView, DirectoryError> {
        accounts::check_name(name)?;
        accounts::check_project(project)?;
        if self.account(name).await?.is_some() {
            return Err(AccountError::Exists(name.to_string()).into());
        }
        let password = password.to_string();
        let account = Account {
            name: name.to_string(),
            password_phc: blocking(move || accounts::hash_password(&password)).await?,
            roles: [(project.to_string(), role)].into(),
            created_ns: crate::now_ns(),
        };
        self.store_doc(&format!("{ACCOUNT}{name}"), &account)
            .await?;
        Ok(account.view())
    }

    /// The account `name`, if there is one.
    pub async fn account(&self, name: &str) -> Result<Option<Account>, DirectoryError> {
        if accounts::check_name(name).is_err() {
            return Ok(None);
        }
        self.load(&format!("{ACCOUNT}{name}")).await
    }

    /// Every account with a role in `project` (all accounts: `None`), by name.
    pub async fn accounts(
        &self,
        project: Option<&str>,
    ) -> Result<Vec<AccountView>, DirectoryError> {
        let mut out = Vec::new();
        for (k, doc) in self.store.list_state(ACCOUNT).await? {
            match serde_json::from_str::<Account>(&doc) {
                Ok(a) if project.is_none_or(|p| a.roles.contains_key(p)) => out.push(a.view()),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(key = %k, error = %e, "stored account unreadable; left out")
                }
            }
        }
        Ok(out)
    }

    /// Sets (`Some`) or removes (`None`) `name`'s role in `project`.
    pub async fn set_role(
        &self,
        name: &str,
        project: &str,
        role: Option<Role>,
    ) -> Result<AccountView, DirectoryError> {
        accounts::check_project(project)?;
        let mut account = self
            .account(name)
            .await?
            .ok_or_else(|| AccountError::Unknown(name.to_string()))?;
        match role {
            Some(r) => account.roles.insert(project.to_string(), r),
            None => account.roles.remove(project),
        };
        self.store_doc(&format!("{ACCOUNT}{name}"), &account)
            .await?;
        Ok(account.view())
    }

    /// Replaces `name`'s password.
    pub async fn set_password(&self, name: &str, password: &str) -> Result<(), DirectoryError> {
        let mut account = self
            .account(name)
            .await?
            .ok_or_else(|| AccountError::Unknown(name.to_string()))?;
        let password = password.to_string();
        account.password_phc = blocking(move || accounts::hash_password(&password)).await?;
        self.store_doc(&format!("{ACCOUNT}{name}"), &account)
            .await?;
        // Whoever knew the old password is signed out everywhere.
        self.end_sessions(name).await?;
        Ok(())
    }

    /// Ends every session of `name`; returns how many.
    pub async fn end_sessions(&self, name: &str) -> Result<usize, DirectoryError> {
        let mut ended = 0;
        for (k, doc) in self.store.list_state(SESSION).await? {
            if serde_json::from_str::<Session>(&doc).is_ok_and(|s| s.account == name) {
                self.store.delete_state(&k).await?;
                ended += 1;
            }
        }
        Ok(ended)
    }

    /// Signs `name` in when `password` is theirs: a new session's token (for the cookie) and
    /// the session. A wrong name takes as long as a wrong password.
    pub async fn sign_in(
        &self,
        name: &str,
        password: &str,
    ) -> Result<Option<(String, Session)>, DirectoryError> {
        let account = self.account(name).await?;
        let phc = account.as_ref().map_or_else(
            || accounts::decoy_hash().to_string(),
            |a| a.password_phc.clone(),
        );
        let password = password.to_string();
        let good = blocking(move || Ok(accounts::verify_password(&phc, &password))).await?;
        if !good || account.is_none() {
            return Ok(None);
        }
        let token = random_hex(32)?;
        let session = Session {
            account: name.to_string(),
            expires_ns: crate::now_ns().saturating_add(accounts::SESSION_TTL_NS),
            csrf: random_hex(32)?,
        };
        self.store_doc(&session_key(&token), &session).await?;
        Ok(Some((token, session)))
    }

    /// The live session of a cookie's `token`, if any (an expired one is removed).
    pub async fn session(&self, token: &str) -> Result<Option<Session>, DirectoryError> {
        if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let key = session_key(token);
        let Some(s) = self.load::<Session>(&key).await? else {
            return Ok(None);
        };
        if s.expires_ns <= crate::now_ns() {
            self.store.delete_state(&key).await?;
            return Ok(None);
        }
        Ok(Some(s))
    }

    /// Ends the session of `token`.
    pub async fn sign_out(&self, token: &str) -> Result<(), DirectoryError> {
        if token.len() == 64 {
            self.store.delete_state(&session_key(token)).await?;
        }
        Ok(())
    }

    /// Removes sessions that have expired; returns how many.
    pub async fn sweep_sessions(&self) -> Result<usize, DirectoryError> {
        let now = crate::now_ns();
        let mut gone = 0;
        for (k, doc) in self.store.list_state(SESSION).await? {
            let expired =
                serde_json::from_str::<Session>(&doc).map_or(true, |s| s.expires_ns <= now);
            if expired {
                self.store.delete_state(&k).await?;
                gone += 1;
            }
        }
        Ok(gone)
    }

    /// Whether the account `name` may do what `needs` guards in `project`, by its role.
    pub async fn allows(
        &self,
        name: &str,
        project: &str,
        needs: Scope,
    ) -> Result<bool, DirectoryError> {
        Ok(self
            .account(name)
            .await?
            .is_some_and(|a| a.allows(project, needs)))
    }
}

fn session_key(token: &str) -> String {
    use sha2::Digest;
    format!(
        "{SESSION}{}",
        hex::encode(sha2::Sha256::digest(token.as_bytes()))
    )
}

fn random_hex(bytes: usize) -> Result<String, DirectoryError> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| AccountError::Hash(e.to_string()))?;
    Ok(hex::encode(buf))
}

/// Runs CPU-heavy work (Argon2) off the async workers when there is a runtime to do it.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, AccountError> + Send + 'static,
) -> Result<T, AccountError> {
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => rt
            .spawn_blocking(f)
            .await
            .map_err(|e| AccountError::Hash(e.to_string()))?,
        Err(_) => f(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn directory() -> (tempfile::TempDir, Directory) {
        let dir = tempfile::tempdir().unwrap();
        let store = spanlens_store::SqliteStore::open(dir.path().join("spans.db")).unwrap();
        (dir, Directory::new(Arc::new(store)))
    }

    #[tokio::test]
    async fn keys_are_made_found_listed_by_project_and_revoked() {
        let (_dir, d) = directory();
        let a = d
            .create("shop", "ci", &[Scope::Ingest], false)
            .await
            .unwrap();
        let b = d.create("blog", "", &[Scope::Admin], false).await.unwrap();
        let cred = Credential::from_token(&a.secret).unwrap();
        let found = d.authenticate(&cred).await.unwrap().unwrap();
        assert_eq!(found.project, "shop");
        // The stored document holds no secret.
        let doc = d
            .store
            .load_state(&format!("apikey:{}", a.view.id))
            .await
            .unwrap()
            .unwrap();
        assert!(!doc.contains(&a.secret[21..]), "{doc}");
        d.record_use(&a.view.id, 42).await.unwrap();
        let shop = d.list(Some("shop")).await.unwrap();
        assert_eq!(shop.len(), 1);
        assert_eq!(shop[0].last_used_ns, Some(42));
        assert_eq!(d.list(None).await.unwrap().len(), 2);
        // Another project's admin cannot revoke it; its own project can, once.
        assert!(d.revoke(Some("blog"), &a.view.id).await.unwrap().is_none());
        let revoked = d.revoke(Some("shop"), &a.view.id).await.unwrap().unwrap();
        let when = revoked.revoked_ns.unwrap();
        let again = d.revoke(None, &a.view.id).await.unwrap().unwrap();
        assert_eq!(again.revoked_ns, Some(when));
        assert!(d.authenticate(&cred).await.unwrap().is_none());
        assert!(d.revoke(None, "0123456789abcdef").await.unwrap().is_none());
        // A damaged document hides only itself.
        d.store
            .save_state("apikey:ffffffffffffffff", "{")
            .await
            .unwrap();
        assert_eq!(d.list(None).await.unwrap().len(), 2);
        assert_eq!(b.view.scopes, [Scope::Admin]);
    }

    #[tokio::test]
    async fn accounts_sign_in_hold_roles_and_sessions_end() {
        let (_dir, d) = directory();
        let ana = d
            .create_account("ana", "a long passphrase", "shop", Role::Viewer)
            .await
            .unwrap();
        assert_eq!(ana.roles["shop"], Role::Viewer);
        assert!(matches!(
            d.create_account("ana", "another passphrase", "shop", Role::Admin)
                .await,
            Err(DirectoryError::Account(AccountError::Exists(_)))
        ));
        assert!(matches!(
            d.create_account("bob", "short", "shop", Role::Admin).await,
            Err(DirectoryError::Account(AccountError::WeakPassword))
        ));
        // The stored document holds a hash, not the password.
        let doc = d.store.load_state("account:ana").await.unwrap().unwrap();
        assert!(
            !doc.contains("a long passphrase") && doc.contains("$argon2id$"),
            "{doc}"
        );
        assert!(d
            .sign_in("ana", "wrong passphrase")
            .await
            .unwrap()
            .is_none());
        assert!(d
            .sign_in("nobody", "a long passphrase")
            .await
            .unwrap()
            .is_none());
        let (token, session) = d
            .sign_in("ana", "a long passphrase")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(d.session(&token).await.unwrap(), Some(session.clone()));
        assert_eq!(session.csrf.len(), 64);
        assert!(d.allows("ana", "shop", Scope::Read).await.unwrap());
        assert!(!d.allows("ana", "shop", Scope::Ingest).await.unwrap());
        d.set_role("ana", "blog", Some(Role::Admin)).await.unwrap();
        assert!(d.allows("ana", "blog", Scope::Admin).await.unwrap());
        assert_eq!(d.accounts(Some("blog")).await.unwrap().len(), 1);
        assert_eq!(d.accounts(Some("nowhere")).await.unwrap().len(), 0);
        d.set_role("ana", "blog", None).await.unwrap();
        assert!(!d.allows("ana", "blog", Scope::Read).await.unwrap());
        d.set_password("ana", "a new passphrase").await.unwrap();
        assert!(d
            .sign_in("ana", "a long passphrase")
            .await
            .unwrap()
            .is_none());
        d.sign_out(&token).await.unwrap();
        assert_eq!(d.session(&token).await.unwrap(), None);
        // An expired session is gone, and swept.
        let (token, mut s) = d.sign_in("ana", "a new passphrase").await.unwrap().unwrap();
        s.expires_ns = 1;
        d.store_doc(&session_key(&token), &s).await.unwrap();
        let (other, _) = d.sign_in("ana", "a new passphrase").await.unwrap().unwrap();
        assert_eq!(d.sweep_sessions().await.unwrap(), 1);
        assert_eq!(d.session(&token).await.unwrap(), None);
        assert!(d.session(&other).await.unwrap().is_some());
        assert_eq!(d.session("not a token").await.unwrap(), None);
    }
}
