//! What SDKs report about their own export (`spanlens_core::sdk_report`), kept per project,
//! service and SDK instance, so that `GET /api/v1/sdk/health` and the dashboard can say "this
//! service dropped N spans".
//!
//! Kept in this server's memory, not in the store: the counters are cumulative per SDK
//! process, so the next batch after a restart brings them back, and a server behind a load
//! balancer knows the instances that send to it. The number of instances kept is bounded (an
//! instance id is the sender's choice); past it the one heard from longest ago goes.

use spanlens_api::SdkServiceHealth;
use spanlens_core::sdk_report::SdkReport;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// SDK instances kept at most, over all projects.
pub const MAX_INSTANCES: usize = 10_000;

/// Characters of a service name kept (the name is a key in memory).
pub const MAX_SERVICE_CHARS: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Key {
    project: String,
    service: String,
    instance: String,
}

#[derive(Debug, Clone, Copy, Default)]
struct Latest {
    exported: u64,
    dropped: u64,
    failed: u64,
    queued: u64,
    at_ns: u64,
}

/// The latest counters of every SDK instance that sent some.
#[derive(Default)]
pub struct SdkHealth {
    instances: Mutex<HashMap<Key, Latest>>,
}

impl SdkHealth {
    /// Records one report for `project`, received at `now_ns`. The cumulative counters keep
    /// their highest value (a retried older batch may arrive late); the queue depth is the
    /// latest report's.
    pub fn record(&self, project: &str, report: &SdkReport, now_ns: u64) {
        let key = Key {
            project: project.to_string(),
            service: report
                .service
                .as_deref()
                .unwrap_or_default()
                .chars()
                .take(MAX_SERVICE_CHARS)
                .collect(),
            instance: report.counters.instance.clone(),
        };
        let c = &report.counters;
        let mut map = self.instances.lock().unwrap_or_else(|e| e.into_inner());
        if !map.contains_key(&key) && map.len() >= MAX_INSTANCES {
            let oldest = map
                .iter()
                .min_by_key(|(_, l)| l.at_ns)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                map.remove(&k);
            }
        }
        let e = map.entry(key).or_default();
        e.exported = e.exported.max(c.exported);
        e.dropped = e.dropped.max(c.dropped);
        e.failed = e.failed.max(c.failed);
        e.queued = c.queued;
        e.at_ns = e.at_ns.max(now_ns);
    }

    /// The services of `project` that reported, each its instances summed: those that lost
    /// spans first (most lost first), then by name.
    pub fn services(&self, project: &str) -> Vec<SdkServiceHealth> {
        let map = self.instances.lock().unwrap_or_else(|e| e.into_inner());
        let mut by_service: BTreeMap<&str, SdkServiceHealth> = BTreeMap::new();
        for (k, l) in map.iter().filter(|(k, _)| k.project == project) {
            let s = by_service
                .entry(&k.service)
                .or_insert_with(|| SdkServiceHealth {
                    service: k.service.clone(),
                    instances: 0,
                    exported: 0,
                    dropped: 0,
                    failed: 0,
                    queued: 0,
                    last_report_ns: 0,
                });
            s.instances += 1;
            s.exported = s.exported.saturating_add(l.exported);
            s.dropped = s.dropped.saturating_add(l.dropped);
            s.failed = s.failed.saturating_add(l.failed);
            s.queued = s.queued.saturating_add(l.queued);
            s.last_report_ns = s.last_report_ns.max(l.at_ns);
        }
        let mut out: Vec<SdkServiceHealth> = by_service.into_values().collect();
        out.sort_by_key(|s| std::cmp::Reverse(s.dropped.saturating_add(s.failed)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spanlens_core::sdk_report::SdkCounters;

    fn report(service: &str, instance: &str, exported: u64, dropped: u64) -> SdkReport {
        SdkReport {
            project: None,
            service: Some(service.into()),
            counters: SdkCounters {
                instance: instance.into(),
                exported,
                dropped,
                failed: 0,
                queued: 3,
            },
        }
    }

    #[test]
    fn instances_add_up_and_a_late_older_report_does_not_lower_a_count() {
        let h = SdkHealth::default();
        h.record("p", &report("api", "a", 100, 5), 10);
        h.record("p", &report("api", "b", 50, 2), 20);
        h.record("p", &report("api", "a", 90, 4), 30); // a retry of an older batch
        h.record("p", &report("worker", "c", 7, 0), 40);
        h.record("other", &report("api", "a", 1_000, 1_000), 50);
        let s = h.services("p");
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].service, "api", "the service that lost spans first");
        assert_eq!(
            (s[0].instances, s[0].exported, s[0].dropped, s[0].queued),
            (2, 150, 7, 6)
        );
        assert_eq!(s[0].last_report_ns, 30);
        assert_eq!((s[1].service.as_str(), s[1].dropped), ("worker", 0));
    }

    #[test]
    fn instances_past_the_bound_push_out_the_stalest() {
        let h = SdkHealth::default();
        for i in 0..MAX_INSTANCES as u64 + 1 {
            h.record("p", &report("api", &i.to_string(), 1, 0), 1 + i);
        }
        let s = h.services("p");
        assert_eq!(s[0].instances, MAX_INSTANCES as u64);
        assert_eq!(s[0].exported, MAX_INSTANCES as u64);
    }
}
