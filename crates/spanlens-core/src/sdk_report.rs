//! What an SDK says about its own export: the counters a batching SDK sends as resource
//! attributes with every batch, so that the server can show that a service is dropping spans.
//!
//! The counters are cumulative for one SDK instance (one process): the receiver keeps the
//! highest it has seen per instance and sums instances per service. They are taken out of the
//! resource before its spans are stored, so no stored span carries them.

use crate::span::Attributes;
use serde_json::Value;

/// Resource attribute: a random id the SDK draws at start, one per process.
pub const INSTANCE: &str = "spanlens.sdk.instance";
/// Resource attribute: spans handed to the exporter successfully so far.
pub const EXPORTED: &str = "spanlens.sdk.spans.exported";
/// Resource attribute: spans dropped so far because the SDK's queue was full.
pub const DROPPED: &str = "spanlens.sdk.spans.dropped";
/// Resource attribute: spans lost so far because exporting them failed.
pub const FAILED: &str = "spanlens.sdk.spans.failed";
/// Resource attribute: spans waiting in the SDK for export when the batch was sent.
pub const QUEUED: &str = "spanlens.sdk.spans.queued";

/// Longest instance id kept (longer ones are cut): the id is a key in the server's memory.
pub const MAX_INSTANCE_CHARS: usize = 64;

/// One SDK instance's counters, as one request carried them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SdkCounters {
    /// The SDK instance (empty when the SDK sent counters without one).
    pub instance: String,
    /// Spans exported so far.
    pub exported: u64,
    /// Spans dropped so far (queue full).
    pub dropped: u64,
    /// Spans lost so far to export errors.
    pub failed: u64,
    /// Spans waiting for export.
    pub queued: u64,
}

/// The counters one resource of a request carried, and whose they are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SdkReport {
    /// The project the resource names, if any (a request's project header wins over it).
    pub project: Option<String>,
    /// The resource's `service.name`.
    pub service: Option<String>,
    /// The counters.
    pub counters: SdkCounters,
}

/// A counter: a non-negative integer, or a string holding one (a resource whose attributes
/// were all sent as strings).
fn count(v: &Value) -> Option<u64> {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

/// Takes the export counters out of a resource's attributes: `None` when it holds none (any
/// resource not from a Spanlens SDK). A counter that is not a non-negative integer reads as 0;
/// every counter attribute is removed either way.
pub fn take(resource: &mut Attributes) -> Option<SdkCounters> {
    let mut found = false;
    let mut take_count = |key: &str| {
        let v = resource.remove(key)?;
        found = true;
        Some(count(&v).unwrap_or(0))
    };
    let exported = take_count(EXPORTED);
    let dropped = take_count(DROPPED);
    let failed = take_count(FAILED);
    let queued = take_count(QUEUED);
    if !found {
        return None;
    }
    let instance = match resource.remove(INSTANCE) {
        Some(Value::String(s)) => s.chars().take(MAX_INSTANCE_CHARS).collect(),
        Some(other) => other.to_string().chars().take(MAX_INSTANCE_CHARS).collect(),
        None => String::new(),
    };
    Some(SdkCounters {
        instance,
        exported: exported.unwrap_or(0),
        dropped: dropped.unwrap_or(0),
        failed: failed.unwrap_or(0),
        queued: queued.unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn attrs(pairs: &[(&str, Value)]) -> Attributes {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn counters_are_taken_out_of_the_resource() {
        let mut r = attrs(&[
            ("service.name", json!("checkout")),
            (INSTANCE, json!("a1")),
            (EXPORTED, json!(10)),
            (DROPPED, json!("7")),
            (FAILED, json!(-3)),
        ]);
        let c = take(&mut r).unwrap();
        assert_eq!(
            c,
            SdkCounters {
                instance: "a1".into(),
                exported: 10,
                dropped: 7,
                failed: 0,
                queued: 0,
            }
        );
        assert_eq!(r, attrs(&[("service.name", json!("checkout"))]));
    }

    #[test]
    fn a_resource_without_counters_is_left_alone() {
        let mut r = attrs(&[("service.name", json!("x")), (INSTANCE, json!("a1"))]);
        let before = r.clone();
        assert_eq!(take(&mut r), None);
        assert_eq!(r, before);
    }

    #[test]
    fn a_long_instance_id_is_cut() {
        let long = "é".repeat(500);
        let mut r = attrs(&[(INSTANCE, json!(long)), (DROPPED, json!(1))]);
        assert_eq!(
            take(&mut r).unwrap().instance.chars().count(),
            MAX_INSTANCE_CHARS
        );
    }
}
