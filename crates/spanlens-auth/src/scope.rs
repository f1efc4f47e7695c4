//! What a credential may do in its project.

use serde::{Deserialize, Serialize};

/// How much one key or project may send; `None` fields are unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    /// Spans per second, sustained (a request may take the next seconds' allowance; the
    /// following ones wait until it is paid back).
    #[serde(default)]
    pub spans_per_second: Option<u32>,
    /// Request bytes per UTC day, counted after decompression.
    #[serde(default)]
    pub bytes_per_day: Option<u64>,
}

impl Quota {
    /// True when nothing is limited.
    pub fn is_unlimited(&self) -> bool {
        self.spans_per_second.is_none() && self.bytes_per_day.is_none()
    }

    /// Checks the limits are usable (not zero).
    pub fn check(&self) -> Result<(), String> {
        if self.spans_per_second == Some(0) || self.bytes_per_day == Some(0) {
            return Err(
                "a quota of 0 would refuse everything: use 1 or more, or null for none".into(),
            );
        }
        Ok(())
    }
}

/// One permission; `admin` includes the other two.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Send spans, log events and scores.
    Ingest,
    /// Read traces, sessions, metrics and scores; watch the live stream.
    Read,
    /// Everything, plus the project's keys, users and settings, and deletions.
    Admin,
}

impl Scope {
    /// Every scope, in order.
    pub const ALL: [Scope; 3] = [Scope::Ingest, Scope::Read, Scope::Admin];

    /// The scope's name (`ingest`, `read`, `admin`).
    pub fn name(self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::Read => "read",
            Scope::Admin => "admin",
        }
    }

    /// Whether holding `scopes` allows what `self` guards.
    pub fn allowed_by(self, scopes: &[Scope]) -> bool {
        scopes.iter().any(|s| *s == self || *s == Scope::Admin)
    }
}

impl std::str::FromStr for Scope {
    type Err = String;

    fn from_str(s: &str) -> Result<Scope, String> {
        Scope::ALL
            .into_iter()
            .find(|x| x.name() == s.trim())
            .ok_or_else(|| format!("scope {s:?}: use ingest, read or admin"))
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_includes_the_others_and_names_round_trip() {
        assert!(Scope::Read.allowed_by(&[Scope::Admin]));
        assert!(Scope::Ingest.allowed_by(&[Scope::Admin]));
        assert!(!Scope::Ingest.allowed_by(&[Scope::Read]));
        assert!(!Scope::Admin.allowed_by(&[Scope::Read, Scope::Ingest]));
        for s in Scope::ALL {
            assert_eq!(s.name().parse::<Scope>().unwrap(), s);
        }
        assert!("root"
            .parse::<Scope>()
            .unwrap_err()
            .contains("ingest, read or admin"));
    }
}
