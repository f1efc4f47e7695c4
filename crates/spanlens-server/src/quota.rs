//! Quotas: how much a key or a project may send — spans per second and bytes per UTC day —
//! enforced at ingest with 429 and `Retry-After`, and counted for admins.
//!
//! A project's quota is a shared-state document (`quota:{project}`, re-read every
//! [`crate::redaction::REFRESH`]); a key's is in the key. The meters are this server's: in a
//! fleet of N collectors each allows the quota, so divide it by N.
//!
//! Spans per second is a bucket that may go into debt: a request is admitted while the bucket
//! is not in debt, then charged its spans, so an exporter's 512-span batch passes a 100
//! spans/s quota and the next ones wait about five seconds. Bytes per day are counted from the
//! decompressed body; a request is admitted while the day's count is under the quota.

use spanlens_auth::Quota;
use spanlens_store::{Store, StoreError};
use std::collections::HashMap;
use std::sync::{Mutex, RwLock};
use std::time::Instant;

const KEY: &str = "quota:";
const DAY_S: u64 = 86_400;

/// A request refused for being over a quota.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Throttled {
    /// Seconds to wait.
    pub retry_after_s: u64,
    /// What is over, for the message.
    pub reason: String,
}

/// What one meter has seen (the API's type).
pub use spanlens_api::QuotaUsage as Usage;

/// One key's or project's meter.
struct Meter {
    /// Spans the bucket holds (negative: in debt).
    tokens: f64,
    refilled: Instant,
    day: u64,
    usage: Usage,
}

impl Meter {
    fn new(q: &Quota) -> Meter {
        Meter {
            tokens: q.spans_per_second.map_or(0.0, f64::from),
            refilled: Instant::now(),
            day: today(),
            usage: Usage::default(),
        }
    }

    /// Brings the bucket and the day up to now.
    fn catch_up(&mut self, q: &Quota) {
        let now = Instant::now();
        if let Some(rate) = q.spans_per_second {
            let rate = f64::from(rate);
            let dt = now.duration_since(self.refilled).as_secs_f64();
            self.tokens = (self.tokens + dt * rate).min(rate);
        }
        self.refilled = now;
        let day = today();
        if day != self.day {
            self.day = day;
            self.usage.bytes_today = 0;
        }
    }

    /// Why a request may not pass now, if it may not.
    fn over(&self, q: &Quota, what: &str) -> Option<Throttled> {
        if let Some(rate) = q.spans_per_second {
            if self.tokens < 0.0 {
                return Some(Throttled {
                    retry_after_s: (-self.tokens / f64::from(rate)).ceil().max(1.0) as u64,
                    reason: format!("{what} is over its quota of {rate} spans per second"),
                });
            }
        }
        if let Some(limit) = q.bytes_per_day {
            if self.usage.bytes_today >= limit {
                let now = unix_s();
                return Some(Throttled {
                    retry_after_s: (DAY_S - now % DAY_S).max(1),
                    reason: format!("{what} is over its quota of {limit} bytes per day (UTC)"),
                });
            }
        }
        None
    }
}

fn unix_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn today() -> u64 {
    unix_s() / DAY_S
}

/// The quotas in force and the meters.
#[derive(Default)]
pub struct Quotas {
    /// Project → its quota (from the store).
    projects: RwLock<HashMap<String, Quota>>,
    /// `p:{project}` or `k:{key id}` → its meter.
    meters: Mutex<HashMap<String, Meter>>,
}

impl std::fmt::Debug for Quotas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Quotas")
    }
}

/// One limit a request is held to: a meter's name, its quota, and how the message names it.
pub struct Limit {
    meter: String,
    quota: Quota,
    what: String,
}

impl Quotas {
    /// A project's quota (unlimited when none is set).
    pub fn project(&self, project: &str) -> Quota {
        self.projects
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(project)
            .copied()
            .unwrap_or_default()
    }

    /// The limits a request to `project` by key `key` (id, quota, prefix) is held to.
    pub fn limits(&self, project: &str, key: Option<(&str, Quota, &str)>) -> Vec<Limit> {
        let mut out = Vec::new();
        let q = self.project(project);
        if !q.is_unlimited() {
            out.push(Limit {
                meter: format!("p:{project}"),
                quota: q,
                what: format!("project {project:?}"),
            });
        }
        if let Some((id, q, prefix)) = key.filter(|(_, q, _)| !q.is_unlimited()) {
            out.push(Limit {
                meter: format!("k:{id}"),
                quota: q,
                what: format!("key {prefix}"),
            });
        }
        out
    }

    /// Admits a request of `spans` spans and `bytes` bytes under every one of `limits` and
    /// charges it, or refuses it (counted) when one of them is over.
    pub fn admit(&self, limits: &[Limit], spans: u64, bytes: u64) -> Result<(), Throttled> {
        if limits.is_empty() {
            return Ok(());
        }
        let mut meters = self.meters.lock().unwrap_or_else(|e| e.into_inner());
        let mut refused = None;
        for l in limits {
            let m = meters
                .entry(l.meter.clone())
                .or_insert_with(|| Meter::new(&l.quota));
            m.catch_up(&l.quota);
            if let Some(t) = m.over(&l.quota, &l.what) {
                m.usage.throttled_requests += 1;
                m.usage.throttled_spans += spans;
                refused.get_or_insert(t);
            }
        }
        if let Some(t) = refused {
            return Err(t);
        }
        for l in limits {
            if let Some(m) = meters.get_mut(&l.meter) {
                m.tokens -= spans as f64;
                m.usage.bytes_today += bytes;
                m.usage.spans += spans;
            }
        }
        Ok(())
    }

    /// What the meter of `project` (or of key `id`) has seen.
    pub fn usage(&self, project: Option<&str>, key: Option<&str>) -> Usage {
        let name = match (project, key) {
            (_, Some(id)) => format!("k:{id}"),
            (Some(p), None) => format!("p:{p}"),
            (None, None) => return Usage::default(),
        };
        let mut meters = self.meters.lock().unwrap_or_else(|e| e.into_inner());
        match meters.get_mut(&name) {
            Some(m) => {
                if m.day != today() {
                    m.day = today();
                    m.usage.bytes_today = 0;
                }
                m.usage
            }
            None => Usage::default(),
        }
    }

    /// Re-reads the projects' quotas.
    pub async fn refresh(&self, store: &dyn Store) -> Result<(), StoreError> {
        let mut projects = HashMap::new();
        for (key, doc) in store.list_state(KEY).await? {
            match serde_json::from_str::<Quota>(&doc) {
                Ok(q) => {
                    projects.insert(key[KEY.len()..].to_string(), q);
                }
                Err(e) => tracing::error!(key, error = %e, "saved quota unreadable; not applied"),
            }
        }
        *self.projects.write().unwrap_or_else(|e| e.into_inner()) = projects;
        Ok(())
    }

    /// Saves a project's quota (unlimited: removes it) and applies it here at once, with a
    /// fresh meter.
    pub async fn save(&self, store: &dyn Store, project: &str, q: Quota) -> Result<(), StoreError> {
        let key = format!("{KEY}{project}");
        if q.is_unlimited() {
            store.delete_state(&key).await?;
        } else {
            let doc =
                serde_json::to_string(&q).map_err(|e| StoreError::InvalidQuery(e.to_string()))?;
            store.save_state(&key, &doc).await?;
        }
        let mut projects = self.projects.write().unwrap_or_else(|e| e.into_inner());
        if q.is_unlimited() {
            projects.remove(project);
        } else {
            projects.insert(project.to_string(), q);
        }
        drop(projects);
        self.meters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&format!("p:{project}"));
        Ok(())
    }
}

/// Re-reads the projects' quotas every [`crate::redaction::REFRESH`] until `stopped`.
pub async fn keep_fresh(
    quotas: std::sync::Arc<Quotas>,
    store: std::sync::Arc<dyn Store>,
    stopped: impl std::future::Future<Output = ()>,
) {
    crate::state::every(crate::redaction::REFRESH, stopped, || async {
        if let Err(e) = quotas.refresh(&*store).await {
            tracing::warn!(error = %e, "quotas not re-read; keeping the ones in force");
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_admits_one_batch_into_debt_then_waits() {
        let q = Quotas::default();
        let limit = Limit {
            meter: "p:x".into(),
            quota: Quota {
                spans_per_second: Some(100),
                bytes_per_day: Some(10_000),
            },
            what: "project \"x\"".into(),
        };
        let limits = [limit];
        q.admit(&limits, 512, 1000).unwrap();
        let t = q.admit(&limits, 10, 10).unwrap_err();
        assert!((4..=6).contains(&t.retry_after_s), "{t:?}");
        assert!(t.reason.contains("100 spans per second"));
        let u = q.usage(Some("x"), None);
        assert_eq!(
            (u.spans, u.throttled_requests, u.throttled_spans),
            (512, 1, 10)
        );
        assert_eq!(u.bytes_today, 1000);
    }

    #[test]
    fn bytes_per_day_refuse_until_midnight() {
        let q = Quotas::default();
        let limits = [Limit {
            meter: "k:abc".into(),
            quota: Quota {
                spans_per_second: None,
                bytes_per_day: Some(1000),
            },
            what: "key slk_abc".into(),
        }];
        q.admit(&limits, 1, 1500).unwrap();
        let t = q.admit(&limits, 1, 1).unwrap_err();
        assert!(
            t.retry_after_s <= DAY_S && t.reason.contains("1000 bytes per day"),
            "{t:?}"
        );
        assert_eq!(q.usage(None, Some("abc")).throttled_requests, 1);
    }
}
