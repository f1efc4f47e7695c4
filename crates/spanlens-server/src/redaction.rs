//! PII redaction at ingest: the server's own settings (`serve --redact …`, for every project)
//! joined with each project's saved settings, compiled once per change and applied to spans,
//! log events and scores before anything is stored.
//!
//! A project's settings are a shared-state document (`redaction:{project}`), so every server
//! on one store applies the same policy: the server that saves a change applies it at once,
//! the others when they next read the documents (every [`REFRESH`]).

use spanlens_core::redact::{RedactError, Redaction, RedactionSettings};
use spanlens_store::{Store, StoreError};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// How often a server re-reads the projects' settings that other servers may have saved.
pub const REFRESH: Duration = Duration::from_secs(10);

/// The shared-state key prefix of the projects' settings.
const KEY_PREFIX: &str = "redaction:";

/// The policies in force: the server's, and each project's joined with it.
pub struct Redactions {
    server: RedactionSettings,
    /// The server's policy alone (projects without settings of their own).
    default: Option<Arc<Redaction>>,
    projects: RwLock<HashMap<String, Project>>,
}

/// One project's saved settings and the policy they make with the server's.
struct Project {
    settings: RedactionSettings,
    policy: Option<Arc<Redaction>>,
}

/// A redaction change that could not be made.
#[derive(Debug, thiserror::Error)]
pub enum RedactionError {
    /// The settings are not usable (a bad rule or key, too many of them).
    #[error(transparent)]
    Invalid(#[from] RedactError),
    /// The store could not read or save them.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl std::fmt::Debug for Redactions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactions")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl Default for Redactions {
    fn default() -> Self {
        Redactions {
            server: RedactionSettings::default(),
            default: None,
            projects: RwLock::new(HashMap::new()),
        }
    }
}

impl Redactions {
    /// The server's settings, for every project; refused when they are not usable.
    pub fn new(server: RedactionSettings) -> Result<Redactions, RedactError> {
        let default = server.compile()?.map(Arc::new);
        Ok(Redactions {
            server,
            default,
            projects: RwLock::new(HashMap::new()),
        })
    }

    /// The server's own settings.
    pub fn server_settings(&self) -> &RedactionSettings {
        &self.server
    }

    /// The settings `project` saved (empty when none).
    pub fn project_settings(&self, project: &str) -> RedactionSettings {
        self.read()
            .get(project)
            .map(|p| p.settings.clone())
            .unwrap_or_default()
    }

    /// The policy for `project`'s spans; `None`: nothing to redact.
    pub fn for_project(&self, project: &str) -> Option<Arc<Redaction>> {
        match self.read().get(project) {
            Some(p) => p.policy.clone(),
            None => self.default.clone(),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Project>> {
        self.projects.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The policy of the server's settings joined with `settings`. Settings saved by another
    /// version that this one cannot use fall back to the built-in detectors, never to nothing.
    fn joined(&self, project: &str, settings: &RedactionSettings) -> Project {
        let policy = match self.server.with(settings).compile() {
            Ok(p) => p.map(Arc::new),
            Err(e) => {
                tracing::error!(project, error = %e, "saved redaction settings unusable; redacting with the built-in detectors");
                RedactionSettings::builtin()
                    .with(&self.server)
                    .compile()
                    .ok()
                    .flatten()
                    .map(Arc::new)
            }
        };
        Project {
            settings: settings.clone(),
            policy,
        }
    }

    /// Reads every project's saved settings from the store (at start, then every [`REFRESH`]).
    pub async fn refresh(&self, store: &dyn Store) -> Result<(), StoreError> {
        let saved = store.list_state(KEY_PREFIX).await?;
        let mut projects = HashMap::with_capacity(saved.len());
        for (key, doc) in saved {
            let project = &key[KEY_PREFIX.len()..];
            let settings = match serde_json::from_str::<RedactionSettings>(&doc) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(project, error = %e, "saved redaction settings unreadable; redacting with the built-in detectors");
                    RedactionSettings::builtin()
                }
            };
            projects.insert(project.to_string(), self.joined(project, &settings));
        }
        *self.projects.write().unwrap_or_else(|e| e.into_inner()) = projects;
        Ok(())
    }

    /// Saves `project`'s settings (none: removes them) after checking they compile, and
    /// applies them on this server at once.
    pub async fn save(
        &self,
        store: &dyn Store,
        project: &str,
        settings: RedactionSettings,
    ) -> Result<(), RedactionError> {
        self.server.with(&settings).compile()?;
        let key = format!("{KEY_PREFIX}{project}");
        let mut projects_entry = None;
        if settings == RedactionSettings::default() {
            store.delete_state(&key).await?;
        } else {
            let doc = serde_json::to_string(&settings).map_err(|e| {
                StoreError::InvalidQuery(format!("redaction settings not serialisable: {e}"))
            })?;
            store.save_state(&key, &doc).await?;
            projects_entry = Some(self.joined(project, &settings));
        }
        let mut projects = self.projects.write().unwrap_or_else(|e| e.into_inner());
        match projects_entry {
            Some(p) => projects.insert(project.to_string(), p),
            None => projects.remove(project),
        };
        Ok(())
    }
}

/// Re-reads the projects' settings every [`REFRESH`] until `stopped`, so a change saved
/// through another server reaches this one.
pub async fn keep_fresh(
    redactions: Arc<Redactions>,
    store: Arc<dyn Store>,
    stopped: impl std::future::Future<Output = ()>,
) {
    crate::state::every(REFRESH, stopped, || async {
        if let Err(e) = redactions.refresh(&*store).await {
            tracing::warn!(error = %e, "redaction settings not re-read; keeping the ones in force");
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use spanlens_core::redact::RedactionRule;

    /// Two servers on one store: what one saves, the other applies after its next refresh;
    /// a removal too.
    #[tokio::test]
    async fn a_change_saved_by_one_server_reaches_another_on_refresh() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(crate::open_store(dir.path()).unwrap());
        let a = Redactions::new(RedactionSettings::default()).unwrap();
        let b = Redactions::new(RedactionSettings::builtin()).unwrap();
        b.refresh(&*store).await.unwrap();
        assert!(a.for_project("p").is_none(), "nothing to redact");
        let settings = RedactionSettings {
            rules: vec![RedactionRule {
                name: "ticket".into(),
                pattern: r"INC-\d+".into(),
            }],
            ..Default::default()
        };
        a.save(&*store, "p", settings.clone()).await.unwrap();
        let mut text = "INC-42 from jane@ex.com".to_string();
        a.for_project("p").unwrap().apply_text(&mut text);
        assert_eq!(
            text, "[REDACTED:ticket] from jane@ex.com",
            "its own rule only"
        );
        let mut text = "INC-42 from jane@ex.com".to_string();
        b.for_project("p").unwrap().apply_text(&mut text);
        assert_eq!(text, "INC-42 from [REDACTED:email]", "not refreshed yet");
        b.refresh(&*store).await.unwrap();
        let mut text = "INC-42 from jane@ex.com".to_string();
        b.for_project("p").unwrap().apply_text(&mut text);
        assert_eq!(
            text, "[REDACTED:ticket] from [REDACTED:email]",
            "the project's rule joined with this server's"
        );
        assert_eq!(b.project_settings("p"), settings);
        a.save(&*store, "p", RedactionSettings::default())
            .await
            .unwrap();
        b.refresh(&*store).await.unwrap();
        assert_eq!(b.project_settings("p"), RedactionSettings::default());
        assert!(a.for_project("p").is_none());
        // Settings this version cannot use (saved by hand, or by another version) redact with
        // the built-in detectors rather than not at all.
        store
            .save_state("redaction:q", r#"{"rules": "not a list"}"#)
            .await
            .unwrap();
        a.refresh(&*store).await.unwrap();
        let mut text = "jane@ex.com".to_string();
        a.for_project("q").unwrap().apply_text(&mut text);
        assert_eq!(text, "[REDACTED:email]");
    }
}
