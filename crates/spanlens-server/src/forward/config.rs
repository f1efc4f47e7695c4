//! The forwarding file (`serve --forward FILE`) and a project's saved destinations: parsing,
//! the checks that refuse a destination with a message naming what is wrong, and the
//! receiver each one resolves to.
//!
//! ```toml
//! [[destination]]
//! name = "collector"
//! kind = "otlp"                            # otlp | langfuse | langsmith
//! endpoint = "http://collector:4318"       # /v1/traces is appended
//! headers = { "x-team" = "agents" }
//! protocol = "http"                        # or "grpc" (endpoint http://host:4317)
//!
//! [[destination]]
//! name = "langfuse"
//! kind = "langfuse"
//! endpoint = "https://cloud.langfuse.com"  # /api/public/otel/v1/traces is appended
//! public_key = "pk-lf-…"
//! secret_key_env = "LANGFUSE_SECRET_KEY"   # or secret_key = "sk-lf-…"
//! projects = ["support"]                   # filters: Spanlens projects, span kinds,
//! kinds = ["llm", "agent", "tool"]         #   the share of traces kept
//! sample_rate = 0.25
//!
//! [[destination]]
//! name = "langsmith"
//! kind = "langsmith"
//! endpoint = "https://api.smith.langchain.com"   # /otel/v1/traces is appended
//! api_key_env = "LANGSMITH_API_KEY"
//! project = "support-agents"
//! ```

use spanlens_api::{DestinationConfig, DestinationKind, ForwardConfig, OtlpProtocol};
use spanlens_core::otlp::encode::target::{self, HttpTarget};
use spanlens_core::otlp::encode::Flavor;
use std::path::Path;

/// Longest destination name.
const MAX_NAME: usize = 64;
/// Most destinations in one file or one project.
pub const MAX_DESTINATIONS: usize = 16;
/// The smallest queue a destination may have.
const MIN_QUEUE_BYTES: u64 = 1 << 20;

/// Why forwarding settings were refused.
#[derive(Debug, thiserror::Error)]
pub enum ForwardConfigError {
    /// Unreadable file.
    #[error("cannot read forwarding file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// What went wrong.
        source: std::io::Error,
    },
    /// Malformed or invalid content.
    #[error("invalid forwarding settings: {0}")]
    Invalid(String),
}

fn invalid(d: &DestinationConfig, why: impl std::fmt::Display) -> ForwardConfigError {
    ForwardConfigError::Invalid(format!("destination {:?}: {why}", d.name))
}

/// Parses and checks a forwarding file's text.
pub fn from_toml(text: &str) -> Result<ForwardConfig, ForwardConfigError> {
    let c: ForwardConfig =
        toml::from_str(text).map_err(|e| ForwardConfigError::Invalid(e.to_string()))?;
    check_all(&c.destination)?;
    Ok(c)
}

/// Reads and checks a forwarding file.
pub fn load(path: &Path) -> Result<ForwardConfig, ForwardConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ForwardConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    from_toml(&text)
}

/// Checks every destination and that no two share a name.
pub fn check_all(list: &[DestinationConfig]) -> Result<(), ForwardConfigError> {
    if list.len() > MAX_DESTINATIONS {
        return Err(ForwardConfigError::Invalid(format!(
            "{} destinations, more than the {MAX_DESTINATIONS} allowed",
            list.len()
        )));
    }
    let mut names = std::collections::BTreeSet::new();
    for d in list {
        check(d)?;
        if !names.insert(d.name.as_str()) {
            return Err(ForwardConfigError::Invalid(format!(
                "two destinations are named {:?}",
                d.name
            )));
        }
    }
    Ok(())
}

/// Checks one destination: its name, endpoint, the credentials its kind needs, its filters.
pub fn check(d: &DestinationConfig) -> Result<(), ForwardConfigError> {
    let name_ok = !d.name.is_empty()
        && d.name.len() <= MAX_NAME
        && d.name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !d.name.starts_with('.');
    if !name_ok {
        return Err(invalid(
            d,
            format!(
                "the name must be 1 to {MAX_NAME} letters, digits, '-', '_' or '.' (not first)"
            ),
        ));
    }
    if !(d.endpoint.starts_with("http://") || d.endpoint.starts_with("https://")) {
        return Err(invalid(
            d,
            format!(
                "endpoint {:?} must be an http:// or https:// URL",
                d.endpoint
            ),
        ));
    }
    if !d
        .endpoint
        .parse::<http::Uri>()
        .is_ok_and(|u| u.host().is_some())
    {
        return Err(invalid(
            d,
            format!("endpoint {:?} is not a URL with a host", d.endpoint),
        ));
    }
    let only = |field: &str, present: bool, kind: &str| {
        if present {
            Err(invalid(d, format!("{field} is for {kind} destinations")))
        } else {
            Ok(())
        }
    };
    let is = |k: DestinationKind| d.kind == k;
    only(
        "protocol",
        d.protocol != OtlpProtocol::Http && !is(DestinationKind::Otlp),
        "otlp",
    )?;
    only(
        "headers",
        !d.headers.is_empty() && !is(DestinationKind::Otlp),
        "otlp",
    )?;
    let langfuse_fields =
        d.public_key.is_some() || d.secret_key.is_some() || d.secret_key_env.is_some();
    only(
        "public_key/secret_key",
        langfuse_fields && !is(DestinationKind::Langfuse),
        "langfuse",
    )?;
    let langsmith_fields = d.api_key.is_some() || d.api_key_env.is_some() || d.project.is_some();
    only(
        "api_key/project",
        langsmith_fields && !is(DestinationKind::Langsmith),
        "langsmith",
    )?;
    match d.kind {
        DestinationKind::Otlp => {
            for (name, value) in &d.headers {
                if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                    return Err(invalid(d, format!("header name {name:?} is not valid")));
                }
                if http::HeaderValue::from_str(value).is_err() {
                    return Err(invalid(
                        d,
                        format!("header {name:?}: the value is not printable ASCII"),
                    ));
                }
            }
        }
        DestinationKind::Langfuse => {
            if d.public_key.as_deref().is_none_or(str::is_empty) {
                return Err(invalid(d, "langfuse needs public_key"));
            }
            one_of(d, "secret_key", &d.secret_key, &d.secret_key_env)?;
        }
        DestinationKind::Langsmith => one_of(d, "api_key", &d.api_key, &d.api_key_env)?,
    }
    if !(d.sample_rate > 0.0 && d.sample_rate <= 1.0) {
        return Err(invalid(
            d,
            format!(
                "sample_rate {} must be above 0 and at most 1",
                d.sample_rate
            ),
        ));
    }
    for p in &d.projects {
        spanlens_core::limits::check_project(p).map_err(|why| invalid(d, why))?;
    }
    if d.queue_bytes.is_some_and(|b| b < MIN_QUEUE_BYTES) {
        return Err(invalid(
            d,
            format!("queue_bytes must be at least {MIN_QUEUE_BYTES}"),
        ));
    }
    Ok(())
}

/// A secret given inline or by the variable that holds it: exactly one of the two.
fn one_of(
    d: &DestinationConfig,
    field: &str,
    inline: &Option<String>,
    env: &Option<String>,
) -> Result<(), ForwardConfigError> {
    match (inline.as_deref(), env.as_deref()) {
        (Some(s), None) if !s.is_empty() => Ok(()),
        (None, Some(v)) if !v.is_empty() => Ok(()),
        (Some(_), Some(_)) => Err(invalid(d, format!("give {field} or {field}_env, not both"))),
        _ => Err(invalid(d, format!("{field} (or {field}_env) is needed"))),
    }
}

/// How a destination is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Receiver {
    /// OTLP/HTTP protobuf.
    Http(HttpTarget),
    /// OTLP/gRPC.
    Grpc {
        /// `http://host:port`.
        endpoint: String,
        /// Metadata sent with each call.
        headers: Vec<(String, String)>,
    },
}

/// The attribute flavour and the receiver of a checked destination; secrets given by variable
/// are read now, and a variable that is not set is an error naming it.
pub fn resolve(d: &DestinationConfig) -> Result<(Flavor, Receiver), ForwardConfigError> {
    let secret = |inline: &Option<String>, env: &Option<String>| match (inline, env) {
        (Some(s), _) => Ok(s.clone()),
        (None, Some(var)) => std::env::var(var)
            .ok()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| invalid(d, format!("environment variable {var} is not set"))),
        (None, None) => Err(invalid(d, "a secret is missing")),
    };
    let headers: Vec<(String, String)> = d
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok(match d.kind {
        DestinationKind::Otlp => match d.protocol {
            OtlpProtocol::Http => (
                Flavor::Otlp,
                Receiver::Http(target::otlp(&d.endpoint, headers)),
            ),
            OtlpProtocol::Grpc => (
                Flavor::Otlp,
                Receiver::Grpc {
                    endpoint: d.endpoint.clone(),
                    headers,
                },
            ),
        },
        DestinationKind::Langfuse => {
            let secret_key = secret(&d.secret_key, &d.secret_key_env)?;
            let public_key = d.public_key.clone().unwrap_or_default();
            let t = target::langfuse(&d.endpoint, &public_key, &secret_key);
            (Flavor::Langfuse, Receiver::Http(t))
        }
        DestinationKind::Langsmith => {
            let api_key = secret(&d.api_key, &d.api_key_env)?;
            let t = target::langsmith(&d.endpoint, &api_key, d.project.as_deref());
            (Flavor::LangSmith, Receiver::Http(t))
        }
    })
}

/// `incoming` with every secret given as the mask replaced by the one `saved` holds for the
/// destination of the same name; a mask with nothing saved behind it is an error.
pub fn unmask(
    incoming: Vec<DestinationConfig>,
    saved: &[DestinationConfig],
) -> Result<Vec<DestinationConfig>, ForwardConfigError> {
    use spanlens_api::SECRET_MASK;
    incoming
        .into_iter()
        .map(|mut d| {
            let old = saved.iter().find(|s| s.name == d.name);
            let missing = |field: &str| {
                ForwardConfigError::Invalid(format!(
                    "destination {:?}: {field} is masked but no saved value stands behind it",
                    d.name
                ))
            };
            for (k, v) in d.headers.iter_mut() {
                if v == SECRET_MASK {
                    *v = old
                        .and_then(|o| o.headers.get(k).cloned())
                        .ok_or_else(|| missing(&format!("header {k:?}")))?;
                }
            }
            if d.secret_key.as_deref() == Some(SECRET_MASK) {
                d.secret_key = Some(
                    old.and_then(|o| o.secret_key.clone())
                        .ok_or_else(|| missing("secret_key"))?,
                );
            }
            if d.api_key.as_deref() == Some(SECRET_MASK) {
                d.api_key = Some(
                    old.and_then(|o| o.api_key.clone())
                        .ok_or_else(|| missing("api_key"))?,
                );
            }
            Ok(d)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_good_file_parses_and_resolves_per_kind() {
        std::env::set_var("SPANLENS_TEST_LS_KEY", "lsv2_pt_1");
        let c = from_toml(
            r#"
            [[destination]]
            name = "collector"
            kind = "otlp"
            endpoint = "http://127.0.0.1:4318"
            headers = { "x-team" = "agents" }

            [[destination]]
            name = "lf"
            kind = "langfuse"
            endpoint = "http://127.0.0.1:3000"
            public_key = "pk-lf-1"
            secret_key = "sk-lf-2"
            kinds = ["llm"]
            sample_rate = 0.5

            [[destination]]
            name = "ls"
            kind = "langsmith"
            endpoint = "http://127.0.0.1:1984"
            api_key_env = "SPANLENS_TEST_LS_KEY"
            project = "agents"
            "#,
        )
        .unwrap();
        assert_eq!(c.destination.len(), 3);
        let (flavor, r) = resolve(&c.destination[0]).unwrap();
        assert_eq!(flavor, Flavor::Otlp);
        assert_eq!(
            r,
            Receiver::Http(HttpTarget {
                url: "http://127.0.0.1:4318/v1/traces".into(),
                headers: vec![("x-team".into(), "agents".into())]
            })
        );
        let (flavor, Receiver::Http(t)) = resolve(&c.destination[1]).unwrap() else {
            panic!("http")
        };
        assert_eq!(flavor, Flavor::Langfuse);
        assert_eq!(t.url, "http://127.0.0.1:3000/api/public/otel/v1/traces");
        let (_, Receiver::Http(t)) = resolve(&c.destination[2]).unwrap() else {
            panic!("http")
        };
        assert!(t
            .headers
            .contains(&("x-api-key".into(), "lsv2_pt_1".into())));
        assert!(t
            .headers
            .contains(&("Langsmith-Project".into(), "agents".into())));
    }

    #[test]
    fn bad_destinations_are_refused_with_the_reason() {
        let cases = [
            (
                "name = \"a b\"\nkind = \"otlp\"\nendpoint = \"http://h\"",
                "the name must be",
            ),
            (
                "name = \"a\"\nkind = \"otlp\"\nendpoint = \"ftp://h\"",
                "http:// or https://",
            ),
            (
                "name = \"a\"\nkind = \"langfuse\"\nendpoint = \"http://h\"\npublic_key = \"pk\"",
                "secret_key (or secret_key_env) is needed",
            ),
            (
                "name = \"a\"\nkind = \"langsmith\"\nendpoint = \"http://h\"",
                "api_key (or api_key_env) is needed",
            ),
            (
                "name = \"a\"\nkind = \"otlp\"\nendpoint = \"http://h\"\napi_key = \"k\"",
                "api_key/project is for langsmith",
            ),
            (
                "name = \"a\"\nkind = \"otlp\"\nendpoint = \"http://h\"\nsample_rate = 0.0",
                "sample_rate 0 must be above 0",
            ),
            (
                "name = \"a\"\nkind = \"otlp\"\nendpoint = \"http://h\"\nkinds = [\"nope\"]",
                "unknown variant",
            ),
            (
                "name = \"a\"\nkind = \"otlp\"\nendpoint = \"http://h\"\nqueue_bytes = 10",
                "queue_bytes must be at least",
            ),
            (
                "name = \"a\"\nkind = \"kafka\"\nendpoint = \"http://h\"",
                "unknown variant",
            ),
            (
                "name = \"a\"\nkind = \"otlp\"\nendpoint = \"http://h\"\ncolour = 1",
                "unknown field",
            ),
        ];
        for (body, want) in cases {
            let err = from_toml(&format!("[[destination]]\n{body}\n"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{body}: {err}");
        }
        let twice = "[[destination]]\nname = \"a\"\nkind = \"otlp\"\nendpoint = \"http://h\"\n";
        let err = from_toml(&twice.repeat(2)).unwrap_err().to_string();
        assert!(err.contains("two destinations are named \"a\""), "{err}");
        std::env::remove_var("SPANLENS_TEST_UNSET_VAR");
        let c = from_toml("[[destination]]\nname = \"a\"\nkind = \"langsmith\"\nendpoint = \"http://h\"\napi_key_env = \"SPANLENS_TEST_UNSET_VAR\"\n").unwrap();
        let err = resolve(&c.destination[0]).unwrap_err().to_string();
        assert!(err.contains("SPANLENS_TEST_UNSET_VAR is not set"), "{err}");
    }

    #[test]
    fn masked_secrets_keep_the_saved_ones() {
        let saved = from_toml("[[destination]]\nname = \"lf\"\nkind = \"langfuse\"\nendpoint = \"http://h\"\npublic_key = \"pk\"\nsecret_key = \"sk-real\"\n").unwrap().destination;
        let shown = saved[0].masked();
        assert_eq!(shown.secret_key.as_deref(), Some(spanlens_api::SECRET_MASK));
        let back = unmask(vec![shown.clone()], &saved).unwrap();
        assert_eq!(back[0].secret_key.as_deref(), Some("sk-real"));
        let renamed = DestinationConfig {
            name: "other".into(),
            ..shown
        };
        assert!(
            unmask(vec![renamed], &saved).is_err(),
            "no saved secret behind the mask"
        );
    }
}
