//! The audit log: who changed what, kept in the store's shared state beside the keys, one
//! document per entry under `audit:{project}:{inverted time}:{nonce}`, so a listing by prefix
//! reads a project's entries newest first.

use serde::{Deserialize, Serialize};
use spanlens_store::{Store, StoreError};

const PREFIX: &str = "audit:";

/// One admin action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When, ns since the epoch.
    pub time_ns: i64,
    /// The project it concerned.
    pub project: String,
    /// Who: `key slk_… (name)`, `account NAME`, `local (auth off)`, `cli`.
    pub actor: String,
    /// What: `key.create`, `key.revoke`, `account.create`, `account.role`,
    /// `account.password`, `delete.trace`, `delete.session`, `delete.user`, `redaction.set`,
    /// `retention.set`, `quota.set`.
    pub action: String,
    /// What it was done to (a key's prefix, an account, a trace id, …).
    pub target: String,
    /// Details (the counts deleted, the new settings, …).
    #[serde(default)]
    pub detail: serde_json::Value,
}

fn key(project: &str, time_ns: i64) -> Result<String, StoreError> {
    let mut nonce = [0u8; 4];
    getrandom::fill(&mut nonce).map_err(|e| StoreError::InvalidQuery(e.to_string()))?;
    let inverted = i64::MAX - time_ns.max(0);
    Ok(format!(
        "{PREFIX}{project}:{inverted:020}:{}",
        hex::encode(nonce)
    ))
}

/// Records `entry` (its time is now when 0).
pub async fn record(store: &dyn Store, mut entry: AuditEntry) -> Result<(), StoreError> {
    if entry.time_ns == 0 {
        entry.time_ns = crate::now_ns();
    }
    let doc = serde_json::to_string(&entry)
        .map_err(|e| StoreError::InvalidQuery(format!("audit entry: {e}")))?;
    store
        .save_state(&key(&entry.project, entry.time_ns)?, &doc)
        .await
}

/// The newest `limit` entries of `project`, newest first (unreadable ones left out).
pub async fn list(
    store: &dyn Store,
    project: &str,
    limit: usize,
) -> Result<Vec<AuditEntry>, StoreError> {
    let prefix = format!("{PREFIX}{project}:");
    Ok(store
        .list_state(&prefix)
        .await?
        .into_iter()
        .filter_map(|(_, doc)| serde_json::from_str::<AuditEntry>(&doc).ok())
        // `audit:a:` also starts the keys of a project named `a:b`.
        .filter(|e| e.project == project)
        .take(limit)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn entries_are_kept_per_project_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = spanlens_store::SqliteStore::open(dir.path().join("s.db")).unwrap();
        for (i, p) in ["a", "b", "a", "a", "a:b"].iter().enumerate() {
            let e = AuditEntry {
                time_ns: 1_000 + i as i64,
                project: p.to_string(),
                actor: "cli".into(),
                action: "key.create".into(),
                target: format!("k{i}"),
                detail: serde_json::Value::Null,
            };
            record(&store, e).await.unwrap();
        }
        let a = list(&store, "a", 10).await.unwrap();
        let targets: Vec<&str> = a.iter().map(|e| e.target.as_str()).collect();
        assert_eq!(targets, ["k3", "k2", "k0"]);
        assert_eq!(list(&store, "a", 1).await.unwrap().len(), 1);
        assert_eq!(list(&store, "b", 10).await.unwrap()[0].target, "k1");
        // A project whose name starts with another's is not mixed in.
        assert!(list(&store, "", 10).await.unwrap().is_empty());
    }
}
