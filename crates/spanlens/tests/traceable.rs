//! `Traceable` components: kind and name from the component, their own and result attributes,
//! and duplicate prevention when a component re-enters itself.

use spanlens::processor::InMemoryProcessor;
use spanlens::{Span, SpanKind, Traceable, Tracer, Value};
use std::borrow::Cow;

struct Retriever {
    index: &'static str,
}

impl Traceable for Retriever {
    type Output = Vec<String>;
    fn kind(&self) -> SpanKind {
        SpanKind::Retriever
    }
    fn name(&self) -> Cow<'static, str> {
        Cow::Owned(format!("retrieve:{}", self.index))
    }
    fn span_attributes(&self, span: &Span) {
        span.set_attribute("retriever.index", self.index);
    }
    fn result_attributes(&self, span: &Span, docs: &Vec<String>) {
        span.set_attribute("retriever.documents", docs.len());
    }
}

impl Retriever {
    fn search(&self, depth: u32) -> Vec<String> {
        self.trace(|_| {
            if depth > 0 {
                // Re-entering the same component must not nest a copy of its span.
                self.search(depth - 1)
            } else {
                vec!["a".into(), "b".into()]
            }
        })
    }
}

fn tracer() -> (Tracer, InMemoryProcessor) {
    let mem = InMemoryProcessor::new();
    (Tracer::builder().with_processor(mem.clone()).build(), mem)
}

#[test]
fn component_names_its_kind_and_records_results_once() {
    let (t, mem) = tracer();
    t.span("root").start().in_scope(|| {
        let r = Retriever { index: "docs" };
        assert_eq!(r.search(3).len(), 2);
    });
    let spans = mem.spans();
    let ret: Vec<_> = spans
        .iter()
        .filter(|s| s.kind == SpanKind::Retriever)
        .collect();
    assert_eq!(ret.len(), 1, "recursion reused the open span");
    assert_eq!(ret[0].name, "retrieve:docs");
    assert_eq!(
        ret[0].attribute("retriever.index"),
        Some(&Value::Str("docs".into()))
    );
    assert_eq!(
        ret[0].attribute("retriever.documents"),
        Some(&Value::I64(2))
    );
    let root = spans.iter().find(|s| s.name == "root").unwrap();
    assert_eq!(ret[0].parent_span_id, Some(root.span_id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_components_record_results_before_their_span_ends() {
    let (t, mem) = tracer();
    let root = t.span("root").start();
    let ctx = root.context();
    ctx.wrap(async {
        let r = Retriever { index: "web" };
        let docs = r
            .trace_async(async {
                tokio::task::yield_now().await;
                let _inner = spanlens::span("http").start();
                vec!["x".to_string()]
            })
            .await;
        assert_eq!(docs.len(), 1);
    })
    .await;
    drop(root);
    let spans = mem.spans();
    let ret = spans
        .iter()
        .find(|s| s.kind == SpanKind::Retriever)
        .unwrap();
    assert_eq!(ret.attribute("retriever.documents"), Some(&Value::I64(1)));
    let http = spans.iter().find(|s| s.name == "http").unwrap();
    assert_eq!(http.parent_span_id, Some(ret.span_id));
}
