//! Hierarchy and context propagation: nesting, parallel children, spawned tasks and threads,
//! concurrent workflows that must never mix, duplicate prevention, scopes, sampling.

use spanlens::processor::InMemoryProcessor;
use spanlens::{Context, FutureExt, SpanData, SpanKind, Tracer};
use std::collections::HashMap;

fn tracer() -> (Tracer, InMemoryProcessor) {
    let mem = InMemoryProcessor::new();
    (Tracer::builder().with_processor(mem.clone()).build(), mem)
}

fn by_name(spans: &[SpanData]) -> HashMap<String, SpanData> {
    spans
        .iter()
        .map(|s| (s.name.to_string(), s.clone()))
        .collect()
}

#[test]
fn spans_nest_under_the_current_span() {
    let (t, mem) = tracer();
    {
        let root = t.span("pipeline").kind(SpanKind::Pipeline).start();
        let _in = root.enter();
        let agent = spanlens::span("agent").kind(SpanKind::Agent).start();
        agent.in_scope(|| {
            let _tool = spanlens::span("tool")
                .kind(SpanKind::Tool)
                .attr("k", 1)
                .start();
        });
    }
    let s = by_name(&mem.spans());
    assert_eq!(s.len(), 3);
    assert_eq!(s["pipeline"].parent_span_id, None);
    assert_eq!(s["agent"].parent_span_id, Some(s["pipeline"].span_id));
    assert_eq!(s["tool"].parent_span_id, Some(s["agent"].span_id));
    assert!(s.values().all(|x| x.trace_id == s["pipeline"].trace_id));
    assert_eq!(s["tool"].kind, SpanKind::Tool);
    assert!(s["tool"].end_time.unwrap() >= s["tool"].start_time);
    assert!(
        s["pipeline"].end_time >= s["agent"].end_time,
        "a parent ends after its children"
    );
}

#[test]
fn without_a_tracer_spans_are_noops() {
    // No global tracer is installed in this test binary.
    let s = spanlens::span("orphan").attr("x", 1).start();
    assert!(!s.is_recording());
    assert_eq!(s.trace_id(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_children_share_their_parent() {
    let (t, mem) = tracer();
    let root = t.span("fan-out").start();
    let root_id = root.span_id().unwrap();
    async {
        let a = async {
            tokio::task::yield_now().await;
            let _s = spanlens::span("left").start();
        }
        .instrument(spanlens::span("branch-a").start());
        let b = async {
            tokio::task::yield_now().await;
            let _s = spanlens::span("right").start();
        }
        .instrument(spanlens::span("branch-b").start());
        tokio::join!(a, b);
        // A spawned task gets the context explicitly.
        tokio::spawn(
            async {
                let _s = spanlens::span("spawned").start();
            }
            .in_current_context(),
        )
        .await
        .unwrap();
        // So does a thread.
        let ctx = Context::current();
        std::thread::spawn(move || {
            let _g = ctx.attach();
            let _s = spanlens::span("thread").start();
        })
        .join()
        .unwrap();
    }
    .instrument(root)
    .await;
    let s = by_name(&mem.spans());
    assert_eq!(s["branch-a"].parent_span_id, Some(root_id));
    assert_eq!(s["branch-b"].parent_span_id, Some(root_id));
    assert_eq!(s["left"].parent_span_id, Some(s["branch-a"].span_id));
    assert_eq!(s["right"].parent_span_id, Some(s["branch-b"].span_id));
    assert_eq!(s["spawned"].parent_span_id, Some(root_id));
    assert_eq!(s["thread"].parent_span_id, Some(root_id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_concurrent_workflows_never_mix() {
    let (t, mem) = tracer();
    let mut handles = Vec::new();
    for i in 0..100u64 {
        let root = t
            .span(format!("workflow-{i}"))
            .kind(SpanKind::Pipeline)
            .start();
        handles.push(tokio::spawn(
            async move {
                for step in 0..3 {
                    let agent = spanlens::span("agent")
                        .kind(SpanKind::Agent)
                        .attr("workflow", i)
                        .start();
                    async move {
                        tokio::time::sleep(std::time::Duration::from_micros((i * 7 + step) % 50))
                            .await;
                        let llm = spanlens::span("llm")
                            .kind(SpanKind::Llm)
                            .attr("workflow", i)
                            .start();
                        async move {
                            tokio::task::yield_now().await;
                            let _tool = spanlens::span("tool").attr("workflow", i).start();
                        }
                        .instrument(llm)
                        .await;
                    }
                    .instrument(agent)
                    .await;
                }
            }
            .instrument(root),
        ));
    }
    for h in handles {
        h.await.unwrap();
    }
    let spans = mem.spans();
    assert_eq!(spans.len(), 100 * (1 + 3 * 3));
    let index: HashMap<_, _> = spans.iter().map(|s| (s.span_id, s)).collect();
    for s in &spans {
        match s.parent_span_id {
            None => assert!(s.name.starts_with("workflow-")),
            Some(p) => {
                let parent = index.get(&p).expect("parent recorded");
                assert_eq!(
                    parent.trace_id, s.trace_id,
                    "span {} has a parent in another trace",
                    s.name
                );
                if let (Some(a), Some(b)) = (s.attribute("workflow"), parent.attribute("workflow"))
                {
                    assert_eq!(a, b, "span {} under another workflow's parent", s.name);
                }
            }
        }
    }
    let traces: std::collections::HashSet<_> = spans.iter().map(|s| s.trace_id).collect();
    assert_eq!(traces.len(), 100);
}

#[test]
fn reentering_the_same_component_reuses_its_span() {
    let (t, mem) = tracer();
    {
        let root = t.span("root").start();
        let _r = root.enter();
        let outer = spanlens::span("retriever")
            .kind(SpanKind::Retriever)
            .identity("docs")
            .attr("a", 1)
            .start();
        outer.in_scope(|| {
            // The same component called again from inside itself (e.g. a recursive agent loop).
            let inner = spanlens::span("retriever")
                .kind(SpanKind::Retriever)
                .identity("docs")
                .attr("b", 2)
                .start();
            assert_eq!(inner.span_id(), outer.span_id());
            inner.set_attribute("a", 3);
            drop(inner);
            assert!(
                outer.is_recording(),
                "the re-entered handle must not end the original"
            );
            // A different identity nests normally.
            let other = spanlens::span("retriever")
                .kind(SpanKind::Retriever)
                .identity("web")
                .start();
            assert_ne!(other.span_id(), outer.span_id());
        });
    }
    let spans = mem.spans();
    let retrievers: Vec<_> = spans.iter().filter(|s| s.name == "retriever").collect();
    assert_eq!(retrievers.len(), 2, "docs once, web once");
    let docs = retrievers
        .iter()
        .find(|s| s.attribute("b").is_some())
        .unwrap();
    assert_eq!(
        docs.attribute("a"),
        Some(&spanlens::Value::I64(3)),
        "attributes merged"
    );
}

#[test]
fn scopes_apply_to_every_span_inside() {
    let (t, mem) = tracer();
    spanlens::scope()
        .user("u_1")
        .session("s_9")
        .tag("beta")
        .metadata("tenant", "acme")
        .run(|| {
            let root = t.span("root").start();
            root.in_scope(|| {
                let _c = spanlens::span("child").start();
            });
        });
    let canonical = spanlens::convert::to_canonical(&mem.spans(), t.resource());
    assert_eq!(canonical.len(), 2);
    for s in canonical {
        assert_eq!(s.user_id.as_deref(), Some("u_1"));
        assert_eq!(s.session_id.as_deref(), Some("s_9"));
        assert_eq!(s.tags, vec!["beta".to_string()]);
        assert_eq!(s.metadata["tenant"], "acme");
    }
}

#[test]
fn sampling_is_decided_per_trace() {
    let mem = InMemoryProcessor::new();
    let none = Tracer::builder()
        .with_processor(mem.clone())
        .with_sample_rate(0.0)
        .build();
    for _ in 0..20 {
        let r = none.span("root").start();
        let _g = r.enter();
        let c = spanlens::span("child").start();
        assert!(!c.is_recording());
        assert_eq!(c.trace_id(), r.trace_id(), "context still propagates");
    }
    assert!(mem.spans().is_empty());
    let half = Tracer::builder()
        .with_processor(mem.clone())
        .with_sample_rate(0.5)
        .build();
    for _ in 0..400 {
        let r = half.span("root").start();
        let _g = r.enter();
        let _c = spanlens::span("child").start();
    }
    let spans = mem.spans();
    let roots = spans.iter().filter(|s| s.parent_span_id.is_none()).count();
    assert!(
        (120..280).contains(&roots),
        "{roots} of 400 traces kept at rate 0.5"
    );
    assert_eq!(
        spans.len(),
        roots * 2,
        "children follow their root's decision"
    );
}
