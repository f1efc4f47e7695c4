//! What a credential may do in its project.

use serde::{Deserialize, Serialize};

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
