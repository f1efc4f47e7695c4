//! Which LLM API a request URL addresses.
//!
//! Recognition is by path only (hosts vary: gateways, proxies, self-hosted OpenAI-compatible
//! servers); the host only refines the provider name of OpenAI-compatible endpoints.

use reqwest::Url;

/// The API shape of a recognised endpoint: it decides how the request and response are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// OpenAI-compatible `…/chat/completions`.
    ChatCompletions,
    /// OpenAI Responses `…/responses`.
    Responses,
    /// OpenAI-compatible legacy `…/completions`.
    Completions,
    /// OpenAI-compatible `…/embeddings`.
    Embeddings,
    /// Anthropic Messages `…/v1/messages`.
    AnthropicMessages,
    /// Gemini `…/models/{model}:generateContent`.
    GeminiGenerate,
    /// Gemini `…/models/{model}:streamGenerateContent`.
    GeminiStream,
}

impl Api {
    /// The GenAI operation name recorded as `gen_ai.operation.name`.
    pub fn operation(self) -> &'static str {
        match self {
            Api::ChatCompletions | Api::Responses | Api::AnthropicMessages => "chat",
            Api::Completions => "text_completion",
            Api::Embeddings => "embeddings",
            Api::GeminiGenerate | Api::GeminiStream => "generate_content",
        }
    }
}

/// A recognised LLM endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// API shape.
    pub api: Api,
    /// Provider name as recorded (`openai`, `anthropic`, `gemini`, `groq`, …).
    pub provider: &'static str,
    /// The model named in the path (Gemini), if any.
    pub path_model: Option<String>,
}

/// Recognises an LLM endpoint from a request URL, or `None` for any other request.
pub fn recognise(url: &Url) -> Option<Endpoint> {
    let path = url.path().trim_end_matches('/');
    let host = url.host_str().unwrap_or("");
    let last = path.rsplit('/').next().unwrap_or("");
    if let Some((model, method)) = last.split_once(':') {
        // Gemini (AI Studio and Vertex AI): `…/models/{model}:{method}`.
        let parent = path[..path.len() - last.len()].trim_end_matches('/');
        if !parent.ends_with("/models") || model.is_empty() {
            return None;
        }
        let api = match method {
            "generateContent" => Api::GeminiGenerate,
            "streamGenerateContent" => Api::GeminiStream,
            _ => return None,
        };
        let provider = if host.contains("aiplatform.googleapis.com") {
            "gcp.vertex_ai"
        } else {
            "gemini"
        };
        return Some(Endpoint {
            api,
            provider,
            path_model: Some(model.to_string()),
        });
    }
    let api = if path.ends_with("/v1/messages") {
        Api::AnthropicMessages
    } else if path.ends_with("/chat/completions") {
        Api::ChatCompletions
    } else if path.ends_with("/responses") {
        Api::Responses
    } else if path.ends_with("/completions") {
        Api::Completions
    } else if path.ends_with("/embeddings") {
        Api::Embeddings
    } else {
        return None;
    };
    let provider = if api == Api::AnthropicMessages {
        "anthropic"
    } else {
        openai_compatible_provider(host)
    };
    Some(Endpoint {
        api,
        provider,
        path_model: None,
    })
}

/// The provider behind an OpenAI-compatible host; `openai` for any host not listed (the API
/// shape, and so the token rule, is OpenAI's either way).
fn openai_compatible_provider(host: &str) -> &'static str {
    const HOSTS: [(&str, &str); 9] = [
        ("openai.azure.com", "azure"),
        ("api.groq.com", "groq"),
        ("api.deepseek.com", "deepseek"),
        ("api.mistral.ai", "mistral"),
        ("api.x.ai", "xai"),
        ("openrouter.ai", "openrouter"),
        ("api.together.xyz", "together"),
        ("api.fireworks.ai", "fireworks"),
        ("api.perplexity.ai", "perplexity"),
    ];
    HOSTS
        .iter()
        .find(|(suffix, _)| host == *suffix || host.ends_with(&format!(".{suffix}")))
        .map_or("openai", |(_, p)| p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(url: &str) -> Option<Endpoint> {
        recognise(&Url::parse(url).unwrap())
    }

    #[test]
    fn openai_compatible_paths() {
        let cases = [
            (
                "https://api.openai.com/v1/chat/completions",
                Api::ChatCompletions,
            ),
            ("http://127.0.0.1:8080/v1/responses", Api::Responses),
            ("https://api.openai.com/v1/completions", Api::Completions),
            ("https://api.openai.com/v1/embeddings/", Api::Embeddings),
            (
                "http://localhost:11434/v1/chat/completions",
                Api::ChatCompletions,
            ),
        ];
        for (url, api) in cases {
            let e = r(url).unwrap_or_else(|| panic!("{url}"));
            assert_eq!((e.api, e.provider), (api, "openai"), "{url}");
        }
        let e = r("https://x.openai.azure.com/openai/deployments/d/chat/completions?api-version=1")
            .unwrap();
        assert_eq!((e.api, e.provider), (Api::ChatCompletions, "azure"));
        assert_eq!(
            r("https://api.groq.com/openai/v1/chat/completions")
                .unwrap()
                .provider,
            "groq"
        );
    }

    #[test]
    fn anthropic_and_gemini_paths() {
        let e = r("https://api.anthropic.com/v1/messages").unwrap();
        assert_eq!((e.api, e.provider), (Api::AnthropicMessages, "anthropic"));
        let e = r("https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse").unwrap();
        assert_eq!(e.api, Api::GeminiStream);
        assert_eq!(e.provider, "gemini");
        assert_eq!(e.path_model.as_deref(), Some("gemini-2.5-flash"));
        let e = r("https://us-central1-aiplatform.googleapis.com/v1/projects/p/locations/l/publishers/google/models/gemini-2.0-flash:generateContent").unwrap();
        assert_eq!(
            (e.api, e.provider, e.path_model.as_deref()),
            (
                Api::GeminiGenerate,
                "gcp.vertex_ai",
                Some("gemini-2.0-flash")
            )
        );
    }

    #[test]
    fn other_requests_are_not_recognised() {
        for url in [
            "https://api.openai.com/v1/models",
            "https://api.anthropic.com/v1/messages/count_tokens",
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:countTokens",
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash",
            "https://example.com/a:generateContent",
            "https://example.com/",
        ] {
            assert_eq!(r(url), None, "{url}");
        }
    }
}
