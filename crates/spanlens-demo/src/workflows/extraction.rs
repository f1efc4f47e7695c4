//! Document extraction (`invoice-extractor`) with structured outputs and repair.

use super::Gen;
use crate::models::{CLAUDE_HAIKU, GPT_4O, GPT_4O_MINI, MISTRAL_LARGE, SELF_HOSTED};
use crate::trace::{meta, msg, tags, template, Call, Ctx, Retry, ToolCall};
use crate::{EXTRACTIONS, MINUTE, UNPRICED_EXTRACTION};
use serde_json::json;
use spanlens_core::SpanKind;

const VENDORS: [&str; 6] = [
    "Northwind Traders",
    "Globex GmbH",
    "Initech Ltd",
    "Umbrella Supplies",
    "Stark Logistics",
    "Wayne Office Co.",
];

impl Gen {
    /// Document extraction: fetch, OCR, structured extraction, schema validation (with a repair
    /// pass), then an ERP upsert.
    pub(crate) fn extraction(&mut self, k: usize) {
        let doc_type = self
            .rng
            .pick(&["invoice", "invoice", "receipt", "purchase_order"]);
        let vendor = self.rng.pick(&VENDORS);
        let currency = self.rng.pick(&["EUR", "USD", "GBP"]);
        let doc_id = format!("doc_{}", self.rng.hex(10));
        let batch = format!("batch-{:04}", self.rng.range(300, 420));
        let pages = self.rng.range(1, 6);
        let t0 = self.place(k, EXTRACTIONS, 5 * MINUTE);
        let ctx = Ctx {
            service: "invoice-extractor",
            user: None,
            session: None,
            tags: tags(&["extraction", doc_type, "batch"]),
            metadata: meta(
                json!({"batch_id": batch, "document_id": doc_id, "pages": pages, "source": "s3://acme-inbox/ap/"}),
            ),
            incident: false,
        };
        let mut t = self.trace(t0);
        let root = t.open(None, "extract_document", SpanKind::Pipeline, 0);
        let bytes = t.rng.range(40_000, 2_400_000);
        t.input(root, json!({"document_id": doc_id, "type": doc_type}));
        let fetch = t.tool(
            root,
            2,
            ToolCall {
                name: "storage.fetch_pdf",
                description: "Downloads the document from object storage",
                args: json!({"bucket": "acme-inbox", "key": format!("ap/{doc_id}.pdf")}),
                result: json!({"bytes": bytes, "content_type": "application/pdf"}),
                duration_ms: (40, 220),
                call_id: None,
                retry: None,
            },
        );
        let chars = pages * t.rng.range(1_200, 3_600);
        let tables = t.rng.range(0, 3);
        let ocr = t.tool(
            root,
            fetch.end + 1,
            ToolCall {
                name: "ocr.extract_text",
                description: "OCR with layout (Textract AnalyzeDocument)",
                args: json!({"document_id": doc_id, "features": ["TABLES", "FORMS"]}),
                result: json!({"pages": pages, "characters": chars, "tables": tables}),
                duration_ms: (700 * pages, 1_400 * pages),
                call_id: None,
                retry: None,
            },
        );
        let roll = t.rng.unit();
        let model = if k == UNPRICED_EXTRACTION {
            SELF_HOSTED
        } else if roll < 0.45 {
            GPT_4O
        } else if roll < 0.75 {
            MISTRAL_LARGE
        } else {
            CLAUDE_HAIKU
        };
        let total = t.rng.range(1_500, 250_000) as f64 / 100.0;
        let fields = json!({
            "vendor_name": vendor,
            "document_number": format!("{}-{}", &doc_type[..3].to_uppercase(), t.rng.range(10_000, 99_999)),
            "issue_date": format!("2025-{:02}-{:02}", t.rng.range(1, 12), t.rng.range(1, 28)),
            "currency": currency,
            "total_amount": total,
            "line_items": t.rng.range(1, 14),
        });
        let mut c = Call::new(
            "extract_fields",
            model,
            900 + chars / 4,
            t.rng.range(180, 520),
        );
        c.prefix = 1_200;
        c.warm = t.rng.chance(0.8);
        c.temperature = 0.0;
        c.max_tokens = 2_048;
        c.json_schema = Some(doc_type);
        c.messages = vec![
            msg("system", format!("Extract the {doc_type} fields as JSON matching the schema. Use null for missing values.")),
            msg("user", format!("[OCR text of {pages} page(s), {chars} characters]")),
        ];
        c.reply = msg("assistant", fields.to_string());
        c.prompt = Some(template(
            "extraction/fields",
            "v5",
            "Extract {{doc_type}} fields per schema {{schema}} from:\n{{ocr_text}}",
            json!({"doc_type": doc_type, "schema": format!("{doc_type}.v3"), "ocr_text": "…"}),
        ));
        let ex = t.llm(root, ocr.end + 1, c);
        let v = t.rng.unit();
        let (first_ok, repair_ok) = (v >= 0.17, v >= 0.05);
        let reason = if first_ok {
            "valid"
        } else {
            "invoice.total_amount: expected number, got string \"1.234,50 €\""
        };
        let dur = t.rng.range(2, 9);
        let check = t.guardrail(root, ex.end + 1, "validate_schema", dur, first_ok, reason);
        let mut last = check.end;
        if !first_ok {
            let mut c = Call::new(
                "repair_json",
                GPT_4O_MINI,
                t.rng.range(900, 1_600),
                t.rng.range(150, 400),
            );
            c.temperature = 0.0;
            c.json_schema = Some(doc_type);
            c.messages = vec![
                msg(
                    "system",
                    "Fix the JSON so it validates. Change nothing else.",
                ),
                msg("user", format!("Error: {reason}")),
            ];
            c.reply = msg("assistant", fields.to_string());
            let rep = t.llm(root, check.end + 1, c);
            let dur = t.rng.range(2, 9);
            let again = t.guardrail(
                root,
                rep.end + 1,
                "validate_schema",
                dur,
                repair_ok,
                if repair_ok {
                    "valid after repair"
                } else {
                    "issue_date: \"31/02/2025\" is not a valid date"
                },
            );
            last = again.end;
        }
        let end = if first_ok || repair_ok {
            let glitch = t.rng.chance(0.08);
            let erp_id = format!("AP-{}", t.rng.range(100_000, 999_999));
            let up = t.tool(root, last + 1, ToolCall {
                name: "erp.upsert_invoice",
                description: "Creates or updates the document in the ERP",
                args: json!({"document_id": doc_id, "vendor": vendor, "total": total, "currency": currency}),
                result: json!({"erp_id": erp_id, "created": true}),
                duration_ms: (90, 400),
                call_id: None,
                retry: glitch.then(|| Retry {
                    fails: 1,
                    exhausted: false,
                    error_type: "ConnectionError",
                    message: "erp: connection reset by peer".into(),
                    attempt_ms: (5, 40),
                    backoff_ms: 200,
                    retry_after_ms: None,
                }),
            });
            t.output(root, fields);
            up.end + 1
        } else {
            t.fail(
                root,
                "ValidationError",
                "issue_date: \"31/02/2025\" is not a valid date (after one repair attempt)",
            );
            last + 1
        };
        t.close(root, end);
        let spans = t.finish(&ctx);
        self.spans.extend(spans);
    }
}
