//! Keys kept in the store's shared state, one document per key (`apikey:{id}`), and the time
//! each was last used apart from it (`apikey-used:{id}`), so recording a use never races with a
//! revocation.

use crate::keys::{ApiKey, Credential, KeyError, KeyView, NewKey};
use crate::Scope;
use spanlens_store::{Store, StoreError};
use std::collections::HashMap;
use std::sync::Arc;

const KEY: &str = "apikey:";
const USED: &str = "apikey-used:";

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
        let (key, new) = ApiKey::generate(project, name, scopes, langfuse)?;
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
}
