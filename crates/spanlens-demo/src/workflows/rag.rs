//! RAG question answering (`docs-qa`).

use super::{Gen, USERS};
use crate::models::{EMBEDDING_SMALL, GEMINI_FLASH, GPT_4O_MINI, MISTRAL_LARGE};
use crate::trace::{meta, msg, tags, template, Call, Ctx, Retry, Trace};
use crate::{MINUTE, RAG_QUESTIONS, SEC};
use serde_json::{json, Value};
use spanlens_core::SpanKind;

/// (question, relevant articles)
const QUESTIONS: [(&str, [&str; 2]); 10] = [
    (
        "How do I rotate an API key without downtime?",
        ["Authentication › Key rotation", "Authentication › API keys"],
    ),
    (
        "What's the maximum payload size for webhook events?",
        [
            "Webhooks › Payload limits",
            "Webhooks › Delivery and retries",
        ],
    ),
    (
        "Can I export traces to S3 on a schedule?",
        ["Exports › Scheduled exports", "Exports › Destinations"],
    ),
    (
        "How are seats counted for guest users?",
        ["Billing › Seats and guests", "Workspace › Guests"],
    ),
    (
        "Does the Python SDK support HTTP proxies?",
        ["SDK › Networking and proxies", "SDK › Configuration"],
    ),
    (
        "Where is data stored for EU customers?",
        ["Security › Data residency", "Security › Sub-processors"],
    ),
    (
        "How do I set up SAML SSO with Okta?",
        ["SSO › Okta SAML setup", "SSO › Troubleshooting"],
    ),
    (
        "Why do my webhooks arrive out of order?",
        [
            "Webhooks › Ordering guarantees",
            "Webhooks › Delivery and retries",
        ],
    ),
    (
        "What changed in the 2.14 release?",
        ["Changelog › 2.14", "Changelog › Deprecations"],
    ),
    (
        "How long are audit logs retained?",
        ["Security › Audit logs", "Plans › Retention"],
    ),
];

const OTHER_DOCS: [&str; 6] = [
    "Getting started › Quickstart",
    "API reference › Pagination",
    "Billing › Invoices",
    "SDK › Logging",
    "Workspace › Roles",
    "Integrations › Slack",
];

impl Gen {
    /// RAG: embed the question, search two indexes in parallel, rerank, answer, judge.
    pub(crate) fn rag_question(&mut self, k: usize) {
        let (question, relevant) = self.rng.pick(&QUESTIONS);
        let user = self.rng.pick(&USERS);
        let area = relevant[0]
            .split(' ')
            .next()
            .unwrap_or("docs")
            .to_lowercase();
        let locale = self.rng.pick(&["en", "en", "en", "de", "fr"]);
        let t0 = self.place(k, RAG_QUESTIONS, 2 * MINUTE);
        let ctx = Ctx {
            service: "docs-qa",
            user: Some(user.to_string()),
            session: None,
            tags: tags(&["rag", "docs", &area]),
            metadata: meta(
                json!({"index": "docs-v7", "top_k": 20, "locale": locale, "app_version": "2.14.0"}),
            ),
            // One question always meets a provider outage, so the demo always shows a timeout.
            incident: k == 9,
        };
        let mut t = self.trace(t0);
        let root = t.open(None, "rag.answer_question", SpanKind::Pipeline, 0);
        t.input(root, json!(question));
        let q_tokens = 8 + question.len() as u64 / 4;
        let emb = t.llm(
            root,
            2,
            Call::new("embed_query", EMBEDDING_SMALL, q_tokens, 0),
        );
        t.attr(emb.span, "embedding.dimensions", json!(1536));
        t.input(emb.span, json!(question));

        // Vector and keyword search overlap.
        let fork = emb.end + 1;
        let docs = |t: &mut Trace, n: usize| -> Vec<Value> {
            let mut v: Vec<Value> = relevant
                .iter()
                .map(|d| json!({"title": d, "score": 0.80 + t.rng.unit() * 0.15}))
                .collect();
            for _ in 0..n {
                let d = t.rng.pick(&OTHER_DOCS);
                v.push(json!({"title": d, "score": 0.35 + t.rng.unit() * 0.35}));
            }
            v
        };
        let vec_span = t.open(Some(root), "vector_search", SpanKind::Retriever, fork);
        t.attr(vec_span, "db.system", json!("pgvector"));
        t.attr(vec_span, "retrieval.top_k", json!(20));
        t.input(
            vec_span,
            json!({"query": question, "top_k": 20, "index": "docs-v7"}),
        );
        let v_docs = docs(&mut t, 4);
        t.output(vec_span, json!({"documents": v_docs}));
        let v_end = fork + t.rng.range(30, 140);
        t.close(vec_span, v_end);
        let kw_start = fork + t.rng.range(0, 4);
        let kw = t.open(Some(root), "keyword_search", SpanKind::Retriever, kw_start);
        t.attr(kw, "db.system", json!("opensearch"));
        t.input(
            kw,
            json!({"query": question, "top_k": 20, "analyzer": locale}),
        );
        let k_docs = docs(&mut t, 3);
        t.output(kw, json!({"documents": k_docs}));
        let k_end = kw_start + t.rng.range(10, 60);
        t.close(kw, k_end);

        let rr_start = v_end.max(k_end) + 1;
        let rr = t.open(Some(root), "rerank", SpanKind::Reranker, rr_start);
        t.attr(rr, "reranker.model_name", json!("rerank-v3.5"));
        t.attr(rr, "reranker.top_k", json!(5));
        // Candidates scored: the analysis reports the reranker's throughput from it.
        t.attr(rr, "spanlens.items", json!(v_docs.len() + k_docs.len()));
        t.input(
            rr,
            json!({"query": question, "candidates": v_docs.len() + k_docs.len()}),
        );
        t.output(
            rr,
            json!({"documents": relevant.iter().map(|d| json!({"title": d})).collect::<Vec<_>>()}),
        );
        let rr_end = rr_start + t.rng.range(60, 220);
        t.close(rr, rr_end);

        let roll = t.rng.unit();
        let model = if roll < 0.5 {
            GEMINI_FLASH
        } else if roll < 0.85 {
            GPT_4O_MINI
        } else {
            MISTRAL_LARGE
        };
        let err = t.rng.unit();
        let err = if ctx.incident { 0.0 } else { err };
        let answer = format!(
            "According to \"{}\": {} (see also \"{}\").",
            relevant[0],
            match relevant[0] {
                d if d.contains("rotation") => "create a second key, deploy it, then revoke the old one — both keys work during the overlap",
                d if d.contains("Payload") => "events are capped at 256 KB; larger objects are sent as a reference you fetch with the API",
                d if d.contains("Scheduled") => "yes, scheduled exports can write Parquet or JSONL to S3 hourly or daily",
                d if d.contains("Seats") => "guests are free up to 5 per paid seat and are not counted as seats",
                d if d.contains("proxies") => "yes, set HTTPS_PROXY or pass proxy= to the client",
                d if d.contains("residency") => "EU workspaces are stored in Frankfurt (eu-central-1) with backups in Ireland",
                d if d.contains("Okta") => "add the Acme app from the Okta catalogue, paste the metadata URL and map the email attribute",
                d if d.contains("Ordering") => "delivery is at-least-once without ordering; use the event's sequence number",
                d if d.contains("2.14") => "2.14 adds scheduled exports, SCIM groups and faster search",
                _ => "audit logs are kept for 365 days on Enterprise and 90 days on Pro",
            },
            relevant[1]
        );
        let mut c = Call::new(
            "generate_answer",
            model,
            t.rng.range(2_400, 6_000),
            t.rng.range(120, 420),
        );
        c.prefix = 1_400;
        c.warm = t.rng.chance(0.6);
        c.temperature = 0.1;
        c.max_tokens = 700;
        c.messages = vec![
            msg(
                "system",
                "Answer only from the provided documentation. Cite article titles.",
            ),
            msg(
                "user",
                format!("Context: {} …\n\nQuestion: {question}", relevant.join("; ")),
            ),
        ];
        c.reply = msg("assistant", answer.clone());
        c.prompt = Some(template(
            "rag/answer",
            "v12",
            "Answer the question using only these documents:\n{{documents}}\n\nQuestion: {{question}}\nCite the titles you used.",
            json!({"question": question, "documents": 5}),
        ));
        if err < 0.06 {
            c.retry = Some(Retry {
                fails: 2,
                exhausted: true,
                error_type: "TimeoutError",
                message: format!("{}: request timed out after 30 s", model.provider),
                attempt_ms: (30 * SEC, 30 * SEC),
                backoff_ms: 500,
                retry_after_ms: None,
            });
        } else if err < 0.14 && model.rpm > 0 {
            c.retry = Some(Retry {
                fails: 1,
                exhausted: false,
                error_type: "RateLimitError",
                message: "openai: 429 Rate limit reached for gpt-4o-mini on tokens per min (TPM)"
                    .into(),
                attempt_ms: (80, 200),
                backoff_ms: 1_000,
                retry_after_ms: Some(t.rng.range(1, 6) * SEC),
            });
        }
        let gen = t.llm(root, rr_end + 1, c);
        let end = if gen.ok {
            let ev = t.open(
                Some(root),
                "groundedness_check",
                SpanKind::Evaluator,
                gen.end + 1,
            );
            let score = ((0.55 + t.rng.unit() * 0.45) * 100.0).round() / 100.0;
            let mut c = Call::new(
                "judge.groundedness",
                GPT_4O_MINI,
                t.rng.range(900, 1_600),
                t.rng.range(20, 60),
            );
            c.temperature = 0.0;
            c.json_schema = Some("groundedness");
            c.messages = vec![
                msg(
                    "system",
                    "Rate how well the answer is supported by the context, 0 to 1.",
                ),
                msg("user", answer.clone()),
            ];
            c.reply = msg(
                "assistant",
                json!({"score": score, "unsupported_claims": []}).to_string(),
            );
            let j = t.llm(ev, gen.end + 2, c);
            t.attr(ev, "eval.name", json!("groundedness"));
            t.attr(ev, "eval.score", json!(score));
            t.output(ev, json!({"score": score, "passed": score >= 0.7}));
            t.close(ev, j.end + 1);
            t.output(root, json!(answer));
            j.end + 2
        } else {
            t.fail(
                root,
                "TimeoutError",
                format!(
                    "{}: request timed out after 30 s (gave up after 2 attempts)",
                    model.provider
                ),
            );
            gen.end + 1
        };
        t.close(root, end);
        let spans = t.finish(&ctx);
        self.spans.extend(spans);
    }
}
