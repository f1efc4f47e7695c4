//! Where each receiver takes OTLP/HTTP and how it wants to be authenticated, from the base URL
//! and credentials a user gives (the server's forwarding file, the SDK's environment).

use base64::Engine;

/// An OTLP/HTTP protobuf endpoint and the headers every request to it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpTarget {
    /// The full URL requests are posted to.
    pub url: String,
    /// Header names and values (authentication, project).
    pub headers: Vec<(String, String)>,
}

/// `base` with `path` appended, unless it already ends with it (so both a base URL and the
/// full traces URL are accepted).
fn join(base: &str, path: &str) -> String {
    let base = base.trim_end_matches('/');
    if base.ends_with(path) {
        base.to_string()
    } else {
        format!("{base}{path}")
    }
}

/// Any OTLP/HTTP receiver: `/v1/traces` under its base URL, with the headers given.
pub fn otlp(endpoint: &str, headers: Vec<(String, String)>) -> HttpTarget {
    HttpTarget {
        url: join(endpoint, "/v1/traces"),
        headers,
    }
}

/// Langfuse's OTLP endpoint: `/api/public/otel/v1/traces` under the Langfuse URL, with Basic
/// authentication of the project's public and secret key.
pub fn langfuse(endpoint: &str, public_key: &str, secret_key: &str) -> HttpTarget {
    let pair = format!("{public_key}:{secret_key}");
    let basic = base64::engine::general_purpose::STANDARD.encode(pair);
    HttpTarget {
        url: join(endpoint, "/api/public/otel/v1/traces"),
        headers: vec![("authorization".into(), format!("Basic {basic}"))],
    }
}

/// LangSmith's OTLP endpoint: `/otel/v1/traces` under the API URL, with the API key in
/// `x-api-key` and the tracing project (LangSmith's `default` when none) in `Langsmith-Project`.
pub fn langsmith(endpoint: &str, api_key: &str, project: Option<&str>) -> HttpTarget {
    let mut headers = vec![("x-api-key".to_string(), api_key.to_string())];
    if let Some(p) = project.filter(|p| !p.is_empty()) {
        headers.push(("Langsmith-Project".into(), p.to_string()));
    }
    HttpTarget {
        url: join(endpoint, "/otel/v1/traces"),
        headers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_appended_once_and_credentials_become_headers() {
        assert_eq!(
            otlp("http://collector:4318/", vec![]).url,
            "http://collector:4318/v1/traces"
        );
        assert_eq!(
            otlp("http://collector:4318/v1/traces", vec![]).url,
            "http://collector:4318/v1/traces"
        );
        let lf = langfuse("https://cloud.langfuse.com", "pk-lf-1", "sk-lf-2");
        assert_eq!(
            lf.url,
            "https://cloud.langfuse.com/api/public/otel/v1/traces"
        );
        // base64("pk-lf-1:sk-lf-2")
        assert_eq!(
            lf.headers,
            vec![("authorization".into(), "Basic cGstbGYtMTpzay1sZi0y".into())]
        );
        let ls = langsmith("https://api.smith.langchain.com", "lsv2_x", Some("shop"));
        assert_eq!(ls.url, "https://api.smith.langchain.com/otel/v1/traces");
        assert_eq!(
            ls.headers,
            vec![
                ("x-api-key".into(), "lsv2_x".into()),
                ("Langsmith-Project".into(), "shop".into())
            ]
        );
    }
}
