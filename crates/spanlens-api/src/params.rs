//! Query parameters of the API as Rust types: what a client sends and what the server reads,
//! with one spelling of each parameter. Only syntax is checked here (a number is a number); what
//! the values mean (a known status, a time) is the server's to judge, with the same error form.

use std::fmt;

/// A query parameter that cannot be read; the server answers 400 with this text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamError {
    /// The parameter.
    pub param: String,
    /// The value given.
    pub value: String,
    /// What is wrong with it.
    pub why: String,
}

impl ParamError {
    /// The error of `param` = `value`.
    pub fn new(param: &str, value: &str, why: &str) -> ParamError {
        ParamError {
            param: param.to_string(),
            value: value.to_string(),
            why: why.to_string(),
        }
    }
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {}={:?}: {}", self.param, self.value, self.why)
    }
}

impl std::error::Error for ParamError {}

/// Query pairs as sent (`tag=a&tag=b` keeps both), read the way every route reads them: the
/// last of repeated single-valued parameters wins, and an empty value counts as absent.
pub struct Pairs<'a>(pub &'a [(String, String)]);

impl<'a> Pairs<'a> {
    /// The value of the first of `keys` given (aliases: `user` and `user_id`).
    pub fn get(&self, keys: &[&str]) -> Option<&'a str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| keys.contains(&k.as_str()))
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// [`get`](Self::get) as an owned string.
    pub fn string(&self, keys: &[&str]) -> Option<String> {
        self.get(keys).map(str::to_string)
    }

    /// Every value of a repeatable parameter, in order.
    pub fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// A number, or an error naming the parameter.
    pub fn number<T: std::str::FromStr>(&self, key: &str) -> Result<Option<T>, ParamError> {
        match self.get(&[key]) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| ParamError::new(key, v, "not a number")),
        }
    }
}

/// `GET /api/v1/traces` (and `/api/v1/traces/outcomes`, which ignores `status`, the sort and
/// the page): which traces, in what order, which page.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TraceListQuery {
    /// Project (default `default`).
    pub project: Option<String>,
    /// Started at or after: RFC 3339 or nanoseconds since the epoch.
    pub from: Option<String>,
    /// Started before: RFC 3339 or nanoseconds since the epoch.
    pub to: Option<String>,
    /// Root span name.
    pub name: Option<String>,
    /// Holds a span of this kind (`llm`, `tool`, …).
    pub kind: Option<String>,
    /// `ok`, `error`, `unset` or `recovered`.
    pub status: Option<String>,
    /// Holds a call to this model.
    pub model: Option<String>,
    /// Holds a call to this provider.
    pub provider: Option<String>,
    /// End user (also read as `user_id`).
    pub user: Option<String>,
    /// Session (also read as `session_id`).
    pub session: Option<String>,
    /// Carries every one of these tags.
    pub tags: Vec<String>,
    /// Lasted at least, milliseconds.
    pub min_duration_ms: Option<f64>,
    /// Lasted at most, milliseconds.
    pub max_duration_ms: Option<f64>,
    /// Cost at least, USD.
    pub min_cost: Option<f64>,
    /// Cost at most, USD.
    pub max_cost: Option<f64>,
    /// Has a score of this name (also read as `score`).
    pub score_name: Option<String>,
    /// … at least this value.
    pub score_min: Option<f64>,
    /// … at most this value.
    pub score_max: Option<f64>,
    /// … with this label.
    pub score_label: Option<String>,
    /// Substring of the trace id, names, user, session, service or tags.
    pub text: Option<String>,
    /// Full-text search (`q`, also read as `content`): words one span holds all of in its
    /// name, input, output or messages (whole words, any case).
    pub content: Option<String>,
    /// Sort column: `start_time`, `duration`, `cost`, `tokens`, `span_count`, `name`, `status`
    /// or `user`.
    pub sort: Option<String>,
    /// `asc` or `desc`.
    pub order: Option<String>,
    /// Rows per page.
    pub limit: Option<u32>,
    /// The previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Holds a span that used this prompt template (`GET /api/v1/prompts` names them).
    pub prompt: Option<String>,
    /// … in this version (needs `prompt`).
    pub prompt_version: Option<String>,
}

impl TraceListQuery {
    /// Reads the query from its pairs; a number that is not one is an error naming it.
    pub fn from_pairs(pairs: &[(String, String)]) -> Result<TraceListQuery, ParamError> {
        let p = Pairs(pairs);
        Ok(TraceListQuery {
            project: p.string(&["project"]),
            from: p.string(&["from"]),
            to: p.string(&["to"]),
            name: p.string(&["name"]),
            kind: p.string(&["kind"]),
            status: p.string(&["status"]),
            model: p.string(&["model"]),
            provider: p.string(&["provider"]),
            user: p.string(&["user", "user_id"]),
            session: p.string(&["session", "session_id"]),
            tags: p.all("tag"),
            min_duration_ms: p.number("min_duration_ms")?,
            max_duration_ms: p.number("max_duration_ms")?,
            min_cost: p.number("min_cost")?,
            max_cost: p.number("max_cost")?,
            score_name: p.string(&["score_name", "score"]),
            score_min: p.number("score_min")?,
            score_max: p.number("score_max")?,
            score_label: p.string(&["score_label"]),
            text: p.string(&["text"]),
            content: p.string(&["q", "content"]),
            sort: p.string(&["sort"]),
            order: p.string(&["order"]),
            limit: p.number("limit")?,
            cursor: p.string(&["cursor"]),
            prompt: p.string(&["prompt"]),
            prompt_version: p.string(&["prompt_version"]),
        })
    }

    /// The query as pairs to send, each parameter under its main name.
    pub fn to_pairs(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let mut text = |k: &'static str, v: &Option<String>| {
            if let Some(v) = v {
                out.push((k, v.clone()));
            }
        };
        text("project", &self.project);
        text("from", &self.from);
        text("to", &self.to);
        text("name", &self.name);
        text("kind", &self.kind);
        text("status", &self.status);
        text("model", &self.model);
        text("provider", &self.provider);
        text("user", &self.user);
        text("session", &self.session);
        text("score_name", &self.score_name);
        text("score_label", &self.score_label);
        text("text", &self.text);
        text("q", &self.content);
        text("sort", &self.sort);
        text("order", &self.order);
        text("cursor", &self.cursor);
        text("prompt", &self.prompt);
        text("prompt_version", &self.prompt_version);
        for t in &self.tags {
            out.push(("tag", t.clone()));
        }
        for (k, v) in [
            ("min_duration_ms", self.min_duration_ms),
            ("max_duration_ms", self.max_duration_ms),
            ("min_cost", self.min_cost),
            ("max_cost", self.max_cost),
            ("score_min", self.score_min),
            ("score_max", self.score_max),
        ] {
            if let Some(v) = v {
                out.push((k, v.to_string()));
            }
        }
        if let Some(n) = self.limit {
            out.push(("limit", n.to_string()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &str) -> Vec<(String, String)> {
        text.split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_query_survives_the_trip_and_aliases_read_as_their_parameter() {
        let q = TraceListQuery {
            project: Some("p".into()),
            user: Some("u1".into()),
            tags: vec!["a".into(), "b".into()],
            min_cost: Some(0.05),
            score_name: Some("helpful".into()),
            score_min: Some(0.5),
            text: Some("send_email".into()),
            limit: Some(20),
            prompt: Some("answer".into()),
            prompt_version: Some("2".into()),
            ..Default::default()
        };
        let sent: Vec<(String, String)> = q
            .to_pairs()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        assert_eq!(TraceListQuery::from_pairs(&sent).unwrap(), q);
        let aliased = TraceListQuery::from_pairs(&pairs(
            "user=&user_id=u2&session_id=s&score=x&text=t&limit=5&limit=7",
        ))
        .unwrap();
        assert_eq!(aliased.user.as_deref(), Some("u2"), "the alias given last");
        assert_eq!(aliased.session.as_deref(), Some("s"));
        assert_eq!(aliased.score_name.as_deref(), Some("x"));
        assert_eq!(aliased.text.as_deref(), Some("t"));
        assert_eq!(aliased.limit, Some(7), "the last wins");
    }

    #[test]
    fn a_number_that_is_not_one_names_its_parameter() {
        let e = TraceListQuery::from_pairs(&pairs("limit=ten")).unwrap_err();
        assert_eq!(e.to_string(), "invalid limit=\"ten\": not a number");
        let e = TraceListQuery::from_pairs(&pairs("min_cost=$5")).unwrap_err();
        assert_eq!(e.param, "min_cost");
    }
}
