//! Where a store lives, named by a URI: `sqlite:///path/to/dir` (the embedded default), and the
//! schemes of the server backends still to come. Parsing is separate from opening so every
//! command names the same store the same way, and errors never show a password.

use std::fmt;
use std::path::PathBuf;

/// Schemes this crate knows; `postgres` and `clickhouse` are named so that asking for them
/// gets a clear answer instead of "unknown scheme".
const KNOWN: &str =
    "sqlite:///path/to/dir, postgres://user:password@host:port/db or clickhouse://host:8123/db";

/// A parsed store location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUri {
    /// The embedded SQLite database in a directory (`<dir>/spanlens.db`).
    Sqlite {
        /// The data directory.
        dir: PathBuf,
    },
    /// A PostgreSQL database.
    Postgres {
        /// The URI as given (it may hold a password: print it with [`StoreUri::redacted`]).
        uri: String,
    },
    /// A ClickHouse database over its HTTP interface.
    ClickHouse {
        /// The URI as given (it may hold a password: print it with [`StoreUri::redacted`]).
        uri: String,
    },
}

/// A store URI that cannot be used; the message names it with any password hidden.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("store {uri}: {reason}")]
pub struct StoreUriError {
    /// The URI, password hidden.
    pub uri: String,
    /// What is wrong with it.
    pub reason: String,
}

impl StoreUri {
    /// The embedded store of a data directory.
    pub fn sqlite(dir: impl Into<PathBuf>) -> StoreUri {
        StoreUri::Sqlite { dir: dir.into() }
    }

    /// Parses `sqlite:///abs/dir`, `sqlite://relative/dir`, `postgres://…`, `postgresql://…`
    /// or `clickhouse://…`.
    pub fn parse(text: &str) -> Result<StoreUri, StoreUriError> {
        let text = text.trim();
        let fail = |reason: String| StoreUriError {
            uri: redact(text),
            reason,
        };
        let Some((scheme, rest)) = text.split_once("://") else {
            return Err(fail(format!("not a store URI: use {KNOWN}")));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "sqlite" => {
                if rest.is_empty() {
                    return Err(fail("no directory: use sqlite:///path/to/dir".into()));
                }
                Ok(StoreUri::Sqlite {
                    dir: PathBuf::from(rest),
                })
            }
            "postgres" | "postgresql" => Ok(StoreUri::Postgres {
                uri: text.to_string(),
            }),
            "clickhouse" => Ok(StoreUri::ClickHouse {
                uri: text.to_string(),
            }),
            other => Err(fail(format!("unknown scheme {other:?}: use {KNOWN}"))),
        }
    }

    /// The URI to show in messages and logs: any password replaced by `***`.
    pub fn redacted(&self) -> String {
        match self {
            StoreUri::Sqlite { dir } => format!("sqlite://{}", dir.display()),
            StoreUri::Postgres { uri } | StoreUri::ClickHouse { uri } => redact(uri),
        }
    }

    /// The backend's name.
    pub fn backend(&self) -> &'static str {
        match self {
            StoreUri::Sqlite { .. } => "sqlite",
            StoreUri::Postgres { .. } => "postgres",
            StoreUri::ClickHouse { .. } => "clickhouse",
        }
    }
}

impl fmt::Display for StoreUri {
    /// Always the redacted form: a store URI is never printed with its password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// `scheme://user:password@host…` with the password replaced by `***` (also in a query
/// parameter named `password`).
pub fn redact(uri: &str) -> String {
    let mut out = uri.to_string();
    if let Some((scheme, rest)) = uri.split_once("://") {
        let (authority, tail) = match rest.find(['/', '?', '#']) {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if let Some((userinfo, host)) = authority.rsplit_once('@') {
            if let Some((user, _password)) = userinfo.split_once(':') {
                out = format!("{scheme}://{user}:***@{host}{tail}");
            }
        }
    }
    if let Some(i) = out.find("password=") {
        let start = i + "password=".len();
        let end = out[start..].find('&').map_or(out.len(), |e| start + e);
        out.replace_range(start..end, "***");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_uris_name_a_directory() {
        assert_eq!(
            StoreUri::parse("sqlite:///var/lib/spanlens").unwrap(),
            StoreUri::sqlite("/var/lib/spanlens")
        );
        assert_eq!(
            StoreUri::parse(" sqlite://spanlens-data ").unwrap(),
            StoreUri::sqlite("spanlens-data")
        );
        assert_eq!(
            StoreUri::sqlite("/d").to_string(),
            "sqlite:///d",
            "shown as it is written"
        );
        assert!(StoreUri::parse("sqlite://")
            .unwrap_err()
            .reason
            .contains("no directory"));
    }

    #[test]
    fn passwords_never_show() {
        let pg = StoreUri::parse("postgres://spanlens:s3cret@db:5432/traces").unwrap();
        assert_eq!(pg.backend(), "postgres");
        assert_eq!(pg.to_string(), "postgres://spanlens:***@db:5432/traces");
        assert!(!format!("{pg}").contains("s3cret"));
        let e = StoreUri::parse("mysql://root:hunter2@h/db").unwrap_err();
        assert!(e.to_string().contains("unknown scheme \"mysql\""), "{e}");
        assert!(!e.to_string().contains("hunter2"), "{e}");
        assert_eq!(
            redact("clickhouse://h:8123/db?user=u&password=p4ss&x=1"),
            "clickhouse://h:8123/db?user=u&password=***&x=1"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        let e = StoreUri::parse("/just/a/path").unwrap_err();
        assert!(e.reason.contains("sqlite:///path/to/dir"), "{e}");
    }
}
