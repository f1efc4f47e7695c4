//! The versioned price catalog: a TOML data file compiled into the binary, plus model-name matching.

use crate::time::Timestamp;
use regex::{Regex, RegexSet};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::{OnceLock, RwLock};

/// The catalog shipped with this build (`data/prices.toml`).
pub const BUILTIN_CATALOG_TOML: &str = include_str!("../../data/prices.toml");

/// A price catalog that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    /// Not valid TOML or not the expected shape.
    #[error("price catalog is not valid: {0}")]
    Syntax(String),
    /// An entry has a bad value.
    #[error("price catalog entry {id:?}: {message}")]
    Entry {
        /// The entry's id.
        id: String,
        /// What is wrong.
        message: String,
    },
}

/// USD per million tokens, held as integer nano-USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rates {
    /// Uncached input.
    pub input: i64,
    /// Output (reasoning included unless `reasoning` is set).
    pub output: i64,
    /// Cache reads; `None` means the input rate applies.
    pub cache_read: Option<i64>,
    /// Cache writes (5-minute TTL); `None` means the input rate applies.
    pub cache_write: Option<i64>,
    /// Cache writes with a one-hour TTL; `None` means the `cache_write` rate applies.
    pub cache_write_1h: Option<i64>,
    /// Reasoning tokens when priced apart from output.
    pub reasoning: Option<i64>,
}

/// A long-context tier: different rates once a request's input exceeds a threshold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tier {
    /// The tier applies when input tokens are strictly above this.
    pub above_input_tokens: u64,
    /// The rates in force in this tier (absent fields inherit the base rates).
    pub rates: Rates,
}

/// One priced model.
#[derive(Debug, Clone)]
pub struct PriceEntry {
    /// Stable pricing id (`gpt-4o`, `claude-sonnet-4`, …).
    pub id: String,
    /// Provider (`openai`, `anthropic`, …).
    pub provider: String,
    /// `chat` or `embedding`.
    pub kind: String,
    /// Regex (anchored) over normalised model names.
    pub pattern: String,
    /// Date the price took effect (`YYYY-MM-DD`).
    pub valid_from: String,
    /// Base rates.
    pub rates: Rates,
    /// Long-context tiers, ascending by threshold.
    pub tiers: Vec<Tier>,
    /// Public page the price was read from.
    pub source: String,
    /// Date the price was read.
    pub checked: String,
}

impl PriceEntry {
    /// The rates for a request with `input_tokens` of input (the highest tier it exceeds).
    pub fn rates_for(&self, input_tokens: u64) -> Rates {
        self.tiers
            .iter()
            .rev()
            .find(|t| input_tokens > t.above_input_tokens)
            .map(|t| t.rates)
            .unwrap_or(self.rates)
    }
}

/// A set of priced models and the version label of the set.
#[derive(Debug)]
pub struct PriceCatalog {
    version: String,
    entries: Vec<PriceEntry>,
    /// The first `overrides` entries come from an override file and win over the rest.
    overrides: usize,
    set: RegexSet,
    cache: RwLock<HashMap<String, Vec<usize>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalog {
    version: String,
    #[serde(default)]
    model: Vec<RawEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    id: String,
    provider: String,
    #[serde(default = "default_kind")]
    kind: String,
    #[serde(rename = "match")]
    pattern: String,
    valid_from: String,
    input: f64,
    output: f64,
    cache_read: Option<f64>,
    cache_write: Option<f64>,
    cache_write_1h: Option<f64>,
    reasoning: Option<f64>,
    source: String,
    checked: String,
    #[serde(default)]
    #[allow(dead_code)]
    note: Option<String>,
    #[serde(default)]
    tiers: Vec<RawTier>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTier {
    above_input_tokens: u64,
    input: Option<f64>,
    output: Option<f64>,
    cache_read: Option<f64>,
    cache_write: Option<f64>,
    cache_write_1h: Option<f64>,
    reasoning: Option<f64>,
}

fn default_kind() -> String {
    "chat".into()
}

/// Most distinct model names remembered by the lookup cache.
const CACHE_LIMIT: usize = 4096;

impl PriceCatalog {
    /// The catalog compiled into this build.
    pub fn builtin() -> &'static PriceCatalog {
        static BUILTIN: OnceLock<PriceCatalog> = OnceLock::new();
        BUILTIN.get_or_init(|| {
            // The shipped file is validated by this crate's tests; failing here is a build defect.
            PriceCatalog::from_toml(BUILTIN_CATALOG_TOML).expect("built-in price catalog is valid")
        })
    }

    /// Parses and validates a catalog in the `data/prices.toml` format.
    pub fn from_toml(text: &str) -> Result<PriceCatalog, CatalogError> {
        let raw: RawCatalog =
            toml::from_str(text).map_err(|e| CatalogError::Syntax(e.to_string()))?;
        let mut entries = Vec::with_capacity(raw.model.len());
        for m in raw.model {
            entries.push(entry(m)?);
        }
        let set = RegexSet::new(entries.iter().map(|e| anchored(&e.pattern)))
            .map_err(|e| CatalogError::Syntax(e.to_string()))?;
        Ok(PriceCatalog {
            version: raw.version,
            entries,
            overrides: 0,
            set,
            cache: RwLock::new(HashMap::new()),
        })
    }

    /// `overrides` layered over `base`: an override entry matching a model (and in force at the
    /// span's time) wins; otherwise `base` prices it as before. The version reads `base+override`.
    pub fn with_overrides(overrides: PriceCatalog, base: &PriceCatalog) -> PriceCatalog {
        let n = overrides.entries.len();
        let mut entries = overrides.entries;
        entries.extend(base.entries.iter().cloned());
        // Both sets already compiled, so their union compiles too.
        let set = RegexSet::new(entries.iter().map(|e| anchored(&e.pattern)))
            .unwrap_or_else(|_| RegexSet::empty());
        PriceCatalog {
            version: format!("{}+{}", base.version, overrides.version),
            entries,
            overrides: n,
            set,
            cache: RwLock::new(HashMap::new()),
        }
    }

    /// How many entries (at the front of [`entries`](Self::entries)) come from an override file.
    pub fn override_count(&self) -> usize {
        self.overrides
    }

    /// The catalog's version label.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Every entry, in file order.
    pub fn entries(&self) -> &[PriceEntry] {
        &self.entries
    }

    /// Finds the price for a model name as an instrumentation reported it.
    ///
    /// `provider` breaks ties between entries of several providers; `at` picks the entry version in
    /// force at that time (latest `valid_from` not after it). `None` means the model is unpriced.
    pub fn lookup(
        &self,
        model: &str,
        provider: Option<&str>,
        at: Option<Timestamp>,
    ) -> Option<&PriceEntry> {
        let candidates = self.candidates(model);
        let provider = provider.map(crate::conventions::canonical_provider);
        let day = at.map(|t| t.to_rfc3339()[..10].to_string());
        let eligible = |e: &&PriceEntry| day.as_deref().is_none_or(|d| e.valid_from.as_str() <= d);
        let pick = |from_overrides: bool, want_provider: bool| {
            candidates
                .iter()
                .filter(|i| (**i < self.overrides) == from_overrides)
                .map(|i| &self.entries[*i])
                .filter(|e| !want_provider || provider.as_deref() == Some(e.provider.as_str()))
                .filter(eligible)
                .max_by(|a, b| a.valid_from.cmp(&b.valid_from))
        };
        // An override not yet in force at the span's time leaves the span to the base prices.
        pick(true, true)
            .or_else(|| pick(true, false))
            .or_else(|| pick(false, true))
            .or_else(|| pick(false, false))
            // A span older than every version is still priced with the earliest known price.
            .or_else(|| {
                candidates
                    .iter()
                    .find(|i| **i >= self.overrides)
                    .or(candidates.first())
                    .map(|i| &self.entries[*i])
            })
    }

    fn candidates(&self, model: &str) -> Vec<usize> {
        if let Ok(cache) = self.cache.read() {
            if let Some(hit) = cache.get(model) {
                return hit.clone();
            }
        }
        let mut found = Vec::new();
        for name in name_variants(model) {
            found = self.set.matches(&name).into_iter().collect();
            if !found.is_empty() {
                break;
            }
        }
        if let Ok(mut cache) = self.cache.write() {
            if cache.len() >= CACHE_LIMIT {
                cache.clear();
            }
            cache.insert(model.to_string(), found.clone());
        }
        found
    }
}

fn anchored(p: &str) -> String {
    format!("^(?:{p})$")
}

fn rate(id: &str, field: &str, usd: f64) -> Result<i64, CatalogError> {
    if !usd.is_finite() || !(0.0..=1e6).contains(&usd) {
        return Err(CatalogError::Entry {
            id: id.into(),
            message: format!(
                "{field} must be a non-negative USD price per million tokens, got {usd}"
            ),
        });
    }
    Ok((usd * 1e9).round() as i64)
}

fn opt_rate(id: &str, field: &str, usd: Option<f64>) -> Result<Option<i64>, CatalogError> {
    usd.map(|u| rate(id, field, u)).transpose()
}

fn entry(m: RawEntry) -> Result<PriceEntry, CatalogError> {
    let id = m.id.clone();
    let err = |message: String| CatalogError::Entry {
        id: id.clone(),
        message,
    };
    Regex::new(&anchored(&m.pattern)).map_err(|e| err(format!("bad match regex: {e}")))?;
    for (field, date) in [("valid_from", &m.valid_from), ("checked", &m.checked)] {
        if chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").is_err() {
            return Err(err(format!("{field} must be YYYY-MM-DD, got {date:?}")));
        }
    }
    if !m.source.starts_with("https://") {
        return Err(err(format!(
            "source must be an https URL, got {:?}",
            m.source
        )));
    }
    if m.kind != "chat" && m.kind != "embedding" {
        return Err(err(format!(
            "kind must be \"chat\" or \"embedding\", got {:?}",
            m.kind
        )));
    }
    let rates = Rates {
        input: rate(&id, "input", m.input)?,
        output: rate(&id, "output", m.output)?,
        cache_read: opt_rate(&id, "cache_read", m.cache_read)?,
        cache_write: opt_rate(&id, "cache_write", m.cache_write)?,
        cache_write_1h: opt_rate(&id, "cache_write_1h", m.cache_write_1h)?,
        reasoning: opt_rate(&id, "reasoning", m.reasoning)?,
    };
    let mut tiers = Vec::new();
    for t in m.tiers {
        tiers.push(Tier {
            above_input_tokens: t.above_input_tokens,
            rates: Rates {
                input: opt_rate(&id, "tiers.input", t.input)?.unwrap_or(rates.input),
                output: opt_rate(&id, "tiers.output", t.output)?.unwrap_or(rates.output),
                cache_read: opt_rate(&id, "tiers.cache_read", t.cache_read)?.or(rates.cache_read),
                cache_write: opt_rate(&id, "tiers.cache_write", t.cache_write)?
                    .or(rates.cache_write),
                cache_write_1h: opt_rate(&id, "tiers.cache_write_1h", t.cache_write_1h)?
                    .or(rates.cache_write_1h),
                reasoning: opt_rate(&id, "tiers.reasoning", t.reasoning)?.or(rates.reasoning),
            },
        });
    }
    tiers.sort_by_key(|t| t.above_input_tokens);
    Ok(PriceEntry {
        id: m.id,
        provider: m.provider,
        kind: m.kind,
        pattern: m.pattern,
        valid_from: m.valid_from,
        rates,
        tiers,
        source: m.source,
        checked: m.checked,
    })
}

/// The normalised model name, then fallbacks without date/version suffixes, in the order tried.
///
/// Normalisation: lowercase; keep what follows the last `/` (`openai/gpt-4o`, `models/gemini-…`,
/// OpenRouter `anthropic/claude-3.5-sonnet`); drop Bedrock region and vendor prefixes
/// (`us.anthropic.`) and `-v1:0` suffixes; drop OpenRouter `:free`-style variants; Vertex `@date` → `-date`;
/// Azure `gpt-35` → `gpt-3.5`.
pub fn name_variants(raw: &str) -> Vec<String> {
    let mut n = raw.trim().to_ascii_lowercase();
    if let Some((_, tail)) = n.rsplit_once('/') {
        n = tail.to_string();
    }
    static BEDROCK_SUFFIX: OnceLock<Regex> = OnceLock::new();
    let bedrock_suffix =
        BEDROCK_SUFFIX.get_or_init(|| Regex::new(r"-v\d+:\d+$").expect("static regex"));
    n = bedrock_suffix.replace(&n, "").into_owned();
    if let Some((head, _)) = n.split_once(':') {
        n = head.to_string();
    }
    for region in ["us.", "eu.", "apac.", "global.", "us-gov."] {
        if let Some(rest) = n.strip_prefix(region) {
            n = rest.to_string();
        }
    }
    for vendor in [
        "anthropic.",
        "meta.",
        "mistral.",
        "cohere.",
        "amazon.",
        "ai21.",
        "deepseek.",
        "openai.",
    ] {
        if let Some(rest) = n.strip_prefix(vendor) {
            n = rest.to_string();
        }
    }
    n = n.replace('@', "-");
    if let Some(rest) = n.strip_prefix("gpt-35") {
        n = format!("gpt-3.5{rest}");
    }
    let mut out = vec![n.clone()];
    static DATED: OnceLock<Regex> = OnceLock::new();
    let dated = DATED.get_or_init(|| {
        Regex::new(r"(-\d{4}-\d{2}-\d{2}|-\d{8}|-\d{4}|-\d{3}|-latest|-preview(-\d{2}-\d{2})?|-exp(-\d{4})?)$")
            .expect("static regex")
    });
    let mut cur = n;
    while let Some(m) = dated.find(&cur) {
        cur = cur[..m.start()].to_string();
        if cur.is_empty() {
            break;
        }
        out.push(cur.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_catalog_parses() {
        let c = PriceCatalog::builtin();
        assert!(
            c.entries().len() >= 40,
            "catalog has {} models",
            c.entries().len()
        );
    }

    #[test]
    fn name_variants_strip_prefixes_and_dates() {
        assert_eq!(name_variants("OpenAI/GPT-4o")[0], "gpt-4o");
        assert_eq!(
            name_variants("us.anthropic.claude-sonnet-4-20250514-v1:0")[0],
            "claude-sonnet-4-20250514"
        );
        assert_eq!(
            name_variants("claude-3-5-sonnet-v2@20241022")[0],
            "claude-3-5-sonnet-v2-20241022"
        );
        assert_eq!(name_variants("gpt-35-turbo")[0], "gpt-3.5-turbo");
        assert_eq!(
            name_variants("meta-llama/llama-3-70b:free")[0],
            "llama-3-70b"
        );
        assert_eq!(
            name_variants("gpt-4o-2024-08-06"),
            vec!["gpt-4o-2024-08-06", "gpt-4o"]
        );
    }

    #[test]
    fn bad_catalogs_are_refused_with_the_entry_named() {
        let base = |extra: &str| {
            format!(
                "version = \"t\"\n[[model]]\nid = \"m\"\nprovider = \"p\"\nmatch = 'm'\nvalid_from = \"2025-01-01\"\n\
                 input = 1.0\noutput = 2.0\nsource = \"https://example.com\"\nchecked = \"2025-01-01\"\n{extra}"
            )
        };
        assert!(PriceCatalog::from_toml(&base("")).is_ok());
        let e = PriceCatalog::from_toml(&base("cache_read = -1.0")).unwrap_err();
        assert!(
            e.to_string().contains("\"m\"") && e.to_string().contains("cache_read"),
            "{e}"
        );
        let e = PriceCatalog::from_toml(&base("bogus = 1")).unwrap_err();
        assert!(e.to_string().contains("bogus"), "{e}");
        let e = PriceCatalog::from_toml(&base("").replace("'m'", "'('")).unwrap_err();
        assert!(e.to_string().contains("regex"), "{e}");
    }

    #[test]
    fn versions_and_tiers() {
        let text = r#"
version = "t"
[[model]]
id = "m"
provider = "p"
match = 'm(-\d{8})?'
valid_from = "2024-01-01"
input = 2.0
output = 4.0
source = "https://example.com"
checked = "2025-01-01"
[[model]]
id = "m"
provider = "p"
match = 'm(-\d{8})?'
valid_from = "2025-01-01"
input = 1.0
output = 2.0
source = "https://example.com"
checked = "2025-01-01"
[[model.tiers]]
above_input_tokens = 1000
input = 3.0
"#;
        let c = PriceCatalog::from_toml(text).unwrap();
        let mid_2024 = Timestamp::parse_rfc3339("2024-06-01T00:00:00Z").unwrap();
        let mid_2025 = Timestamp::parse_rfc3339("2025-06-01T00:00:00Z").unwrap();
        let old = Timestamp::parse_rfc3339("2020-06-01T00:00:00Z").unwrap();
        assert_eq!(
            c.lookup("m", None, Some(mid_2024)).unwrap().rates.input,
            2_000_000_000
        );
        assert_eq!(
            c.lookup("m-20250101", None, Some(mid_2025))
                .unwrap()
                .rates
                .input,
            1_000_000_000
        );
        assert_eq!(c.lookup("m", None, None).unwrap().valid_from, "2025-01-01");
        assert!(c.lookup("m", None, Some(old)).is_some());
        let e = c.lookup("m", None, None).unwrap();
        assert_eq!(e.rates_for(1000).input, 1_000_000_000);
        assert_eq!(e.rates_for(1001).input, 3_000_000_000);
        assert_eq!(e.rates_for(1001).output, 2_000_000_000);
        assert!(c.lookup("x", None, None).is_none());
    }

    #[test]
    fn overrides_win_from_their_valid_from_on() {
        let text = r#"
version = "mine"
[[model]]
id = "gpt-4o-negotiated"
provider = "openai"
match = 'gpt-4o(-\d{4}-\d{2}-\d{2})?'
valid_from = "2025-06-01"
input = 1.0
output = 5.0
source = "https://example.com/contract"
checked = "2025-06-01"
"#;
        let over = PriceCatalog::from_toml(text).unwrap();
        let base = PriceCatalog::builtin();
        let c = PriceCatalog::with_overrides(over, base);
        assert_eq!(c.override_count(), 1);
        assert_eq!(c.version(), format!("{}+mine", base.version()));
        let after = Timestamp::parse_rfc3339("2025-07-01T00:00:00Z").unwrap();
        let before = Timestamp::parse_rfc3339("2025-01-01T00:00:00Z").unwrap();
        let e = c
            .lookup("openai/gpt-4o", Some("openai"), Some(after))
            .unwrap();
        assert_eq!(e.id, "gpt-4o-negotiated");
        let e = c.lookup("gpt-4o", None, Some(before)).unwrap();
        assert_eq!(e.id, base.lookup("gpt-4o", None, Some(before)).unwrap().id);
        // Models the override does not mention keep their built-in price.
        assert!(c.lookup("claude-sonnet-4", None, Some(after)).is_some());
    }
}
