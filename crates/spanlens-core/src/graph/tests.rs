use super::*;
use crate::{Cost, Timestamp, ToolInfo, TraceId, Usage};
use serde_json::json;

const MS: u64 = 1_000_000;

fn id(n: u64) -> SpanId {
    SpanId(n.to_be_bytes())
}

fn span(n: u64, parent: Option<u64>, kind: SpanKind, name: &str, from_ms: u64, to_ms: u64) -> Span {
    Span {
        trace_id: TraceId([7; 16]),
        span_id: id(n),
        parent_span_id: parent.map(id),
        name: name.into(),
        kind,
        start_time: Timestamp(1_700_000_000_000 * MS + from_ms * MS),
        end_time: Some(Timestamp(1_700_000_000_000 * MS + to_ms * MS)),
        ..Default::default()
    }
}

fn llm(
    n: u64,
    parent: u64,
    provider: &str,
    model: &str,
    ms: (u64, u64),
    nano: i64,
    tokens: (u64, u64),
) -> Span {
    let mut s = span(n, Some(parent), SpanKind::Llm, "chat", ms.0, ms.1);
    s.provider = Some(provider.into());
    s.request_model = Some(model.into());
    s.response_model = Some(format!("{model}-2025-01-01"));
    s.usage = Some(Usage {
        input_tokens: tokens.0,
        output_tokens: tokens.1,
        ..Default::default()
    });
    if nano > 0 {
        s.cost = Some(Cost::computed_total(NanoUsd(nano)));
    } else {
        s.unpriced_reason = Some("no price".into());
    }
    s
}

/// A pipeline whose triage agent asks a model twice (once through a plain helper span, which
/// fails), hands off to billing, and billing calls a tool and an unpriced model.
fn support_trace() -> Vec<Span> {
    let mut helper_call = llm(
        5,
        4,
        "openai",
        "gpt-4o-mini",
        (130, 180),
        2_000_000,
        (200, 30),
    );
    helper_call.status = Status::Error;
    let mut handoff = span(6, Some(2), SpanKind::Handoff, "handoff → billing", 190, 191);
    handoff
        .attributes
        .insert("handoff.to".into(), json!("billing"));
    let mut billing = span(7, Some(1), SpanKind::Agent, "billing agent run", 200, 900);
    billing.agent_name = Some("billing".into());
    let mut tool = span(8, Some(7), SpanKind::Tool, "call tool", 210, 260);
    tool.tool = Some(ToolInfo {
        name: Some("orders.lookup".into()),
        ..Default::default()
    });
    vec![
        span(1, None, SpanKind::Pipeline, "support", 0, 1000),
        span(2, Some(1), SpanKind::Agent, "triage", 10, 200),
        llm(
            3,
            2,
            "openai",
            "gpt-4o-mini",
            (20, 120),
            1_000_000,
            (100, 20),
        ),
        span(4, Some(2), SpanKind::Span, "helper", 125, 185),
        helper_call,
        handoff,
        billing,
        tool,
        llm(9, 7, "anthropic", "claude", (300, 800), 0, (500, 50)),
    ]
}

fn node<'a>(g: &'a Graph, id: &str) -> &'a Node {
    g.nodes.iter().find(|n| n.id == id).unwrap_or_else(|| {
        panic!(
            "no node {id} in {:?}",
            g.nodes.iter().map(|n| &n.id).collect::<Vec<_>>()
        )
    })
}

fn edge<'a>(g: &'a Graph, from: &str, to: &str) -> &'a Edge {
    g.edges
        .iter()
        .find(|e| e.from == from && e.to == to)
        .unwrap_or_else(|| panic!("no edge {from} → {to}"))
}

#[test]
fn a_trace_becomes_agents_tools_models_and_calls() {
    let g = trace_graph(&support_trace());
    assert_eq!(g.traces, 1);
    let ids: Vec<&str> = g.nodes.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "pipeline:support",
            "agent:triage",
            "agent:billing",
            "model:openai/gpt-4o-mini",
            "tool:orders.lookup",
            "model:anthropic/claude",
        ]
    );
    let depth = |id: &str| node(&g, id).depth;
    assert_eq!(
        [
            depth("pipeline:support"),
            depth("agent:triage"),
            depth("agent:billing"),
            depth("model:anthropic/claude")
        ],
        [0, 1, 1, 2]
    );

    // Two calls of one model, one through the plain helper span: one node, one edge.
    let gpt = node(&g, "model:openai/gpt-4o-mini");
    assert_eq!((gpt.stats.calls, gpt.stats.errors), (2, 1));
    assert_eq!(gpt.stats.cost, NanoUsd(3_000_000));
    assert_eq!(gpt.stats.duration_ns, 150 * MS);
    assert_eq!(gpt.span_ids, [id(3), id(5)]);
    let e = edge(&g, "agent:triage", "model:openai/gpt-4o-mini");
    assert_eq!((e.stats.calls, e.stats.errors, e.handoff), (2, 1, false));
    assert_eq!(e.stats.duration_ns, 150 * MS);
    assert_eq!((e.stats.input_tokens, e.stats.output_tokens), (300, 50));

    // The handoff is an agent → agent edge carrying the handoff span.
    let h = edge(&g, "agent:triage", "agent:billing");
    assert!(h.handoff);
    assert_eq!((h.stats.calls, h.stats.duration_ns), (1, MS));
    assert_eq!(h.span_ids, [id(6)]);
    assert!(!g.nodes.iter().any(|n| n.kind == NodeKind::Handoff));

    // A call's edge carries its whole subtree's cost; the agent node owns only its own.
    let into_triage = edge(&g, "pipeline:support", "agent:triage");
    assert_eq!(into_triage.stats.cost, NanoUsd(3_000_000));
    assert_eq!(into_triage.stats.duration_ns, 190 * MS);
    assert_eq!(node(&g, "agent:triage").stats.cost, NanoUsd::ZERO);
    let into_billing = edge(&g, "pipeline:support", "agent:billing");
    assert_eq!(
        (into_billing.stats.unpriced, into_billing.stats.input_tokens),
        (1, 500)
    );
    assert_eq!(
        edge(&g, "agent:billing", "tool:orders.lookup").stats.calls,
        1
    );
    assert_eq!(node(&g, "agent:billing").span_ids, [id(7)]);

    // Node sums add up to the trace's.
    let cost: NanoUsd = g.nodes.iter().map(|n| n.stats.cost).sum();
    let input: u64 = g.nodes.iter().map(|n| n.stats.input_tokens).sum();
    let unpriced: u64 = g.nodes.iter().map(|n| n.stats.unpriced).sum();
    assert_eq!((cost, input, unpriced), (NanoUsd(3_000_000), 800, 1));
    assert_eq!(g.edges.len(), 6);
}

#[test]
fn a_handoff_without_a_target_is_a_node() {
    let spans = vec![
        span(1, None, SpanKind::Agent, "triage", 0, 10),
        span(2, Some(1), SpanKind::Handoff, "transfer", 2, 3),
        span(3, Some(1), SpanKind::Handoff, "handoff: triage → ?", 4, 5),
    ];
    let g = trace_graph(&spans);
    assert_eq!(edge(&g, "agent:triage", "handoff:transfer").stats.calls, 1);
    assert_eq!(
        node(&g, "handoff:handoff: triage → ?").kind,
        NodeKind::Handoff
    );
    let mut named = span(
        4,
        Some(1),
        SpanKind::Handoff,
        "handoff: triage → Billing",
        6,
        7,
    );
    named.agent_name = Some("triage".into());
    assert_eq!(handoff_target(&named).as_deref(), Some("Billing"));
}

#[test]
fn a_span_id_sent_twice_counts_once_as_its_last_copy() {
    let mut spans = support_trace();
    let mut again = span(3, Some(2), SpanKind::Tool, "search", 20, 120);
    again.tool = Some(ToolInfo::default());
    spans.push(again);
    let g = trace_graph(&spans);
    assert_eq!(node(&g, "model:openai/gpt-4o-mini").span_ids, [id(5)]);
    assert_eq!(node(&g, "tool:search").span_ids, [id(3)]);
    assert_eq!(edge(&g, "agent:triage", "tool:search").stats.calls, 1);
}

#[test]
fn a_span_whose_parent_is_missing_is_a_root() {
    let spans = vec![
        span(1, Some(99), SpanKind::Span, "orphan work", 0, 10),
        llm(2, 1, "openai", "gpt-4o", (1, 5), 10, (1, 1)),
        span(3, Some(98), SpanKind::Agent, "lost agent", 0, 10),
    ];
    let g = trace_graph(&spans);
    assert_eq!(node(&g, "pipeline:orphan work").depth, 0);
    assert_eq!(node(&g, "agent:lost agent").depth, 0);
    assert_eq!(
        edge(&g, "pipeline:orphan work", "model:openai/gpt-4o")
            .stats
            .calls,
        1
    );
    assert_eq!(g.edges.len(), 1);
}

#[test]
fn a_parent_cycle_ends() {
    // 1 → 2 → 1, and 3 is its own parent: every walk up must end.
    let spans = vec![
        span(1, Some(2), SpanKind::Agent, "a", 0, 10),
        span(2, Some(1), SpanKind::Agent, "b", 1, 9),
        llm(4, 2, "openai", "gpt-4o", (2, 3), 5, (1, 1)),
        span(3, Some(3), SpanKind::Tool, "self", 0, 1),
    ];
    let g = trace_graph(&spans);
    assert_eq!(node(&g, "agent:a").depth, 0);
    assert_eq!(node(&g, "tool:self").depth, 0);
    assert_eq!(edge(&g, "agent:a", "agent:b").stats.cost, NanoUsd(5));
    assert_eq!(edge(&g, "agent:b", "model:openai/gpt-4o").stats.calls, 1);
    assert_eq!(g.edges.len(), 2);
}

#[test]
fn a_call_recorded_twice_counts_once() {
    let mut copy = llm(4, 3, "openai", "gpt-4o", (2, 8), 50, (10, 10));
    copy.duplicate_of = Some(id(3));
    let spans = vec![
        span(1, None, SpanKind::Agent, "a", 0, 10),
        llm(3, 1, "openai", "gpt-4o", (1, 9), 50, (10, 10)),
        copy,
    ];
    let g = trace_graph(&spans);
    let m = node(&g, "model:openai/gpt-4o");
    assert_eq!(
        (m.stats.calls, m.stats.cost, m.stats.input_tokens),
        (1, NanoUsd(50), 10)
    );
    assert_eq!(g.edges.len(), 1);
}

#[test]
fn graphs_of_many_traces_add_up() {
    let one = trace_graph(&support_trace());
    let mut short = support_trace();
    short.truncate(3); // support → triage → gpt-4o-mini
    let two = trace_graph(&short);
    let g = merge([one.clone(), two, Graph::default()]);
    assert_eq!(g.traces, 2);
    assert_eq!(node(&g, "agent:triage").traces, 2);
    assert_eq!(node(&g, "agent:billing").traces, 1);
    let e = edge(&g, "agent:triage", "model:openai/gpt-4o-mini");
    assert_eq!((e.traces, e.stats.calls, e.stats.errors), (2, 3, 1));
    assert_eq!(e.stats.cost, NanoUsd(4_000_000));
    assert!(g.nodes.iter().all(|n| n.span_ids.is_empty()));
    assert!(g.edges.iter().all(|e| e.span_ids.is_empty()));
    // Merging one graph gives its figures back.
    let alone = merge([one.clone()]);
    for (a, b) in alone.nodes.iter().zip(&one.nodes) {
        assert_eq!(
            (&a.id, a.stats, a.traces, a.depth),
            (&b.id, b.stats, b.traces, b.depth)
        );
    }
    assert_eq!(alone.edges.len(), one.edges.len());
}

#[test]
fn no_spans_no_graph() {
    let g = trace_graph(&[]);
    assert_eq!((g.traces, g.nodes.len()), (0, 0));
    let l = layout(&g);
    assert!(l.boxes.is_empty());
}

#[test]
fn columns_follow_call_depth() {
    let g = trace_graph(&support_trace());
    let l = layout(&g);
    let x = |id: &str| l.boxes[g.nodes.iter().position(|n| n.id == id).unwrap()].x;
    assert!(x("pipeline:support") < x("agent:triage"));
    assert_eq!(x("agent:triage"), x("agent:billing"));
    assert!(x("agent:billing") < x("tool:orders.lookup"));
}

/// Fifty nodes, labels from one character to far past the cap, depths uneven (one column of
/// twenty), edges between random columns: no two boxes share any area, every box fits its
/// label as estimated, and the drawing holds them all.
#[test]
fn fifty_nodes_never_overlap() {
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |m: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % m
    };
    let mut g = Graph {
        traces: 1,
        ..Default::default()
    };
    for i in 0..50u64 {
        let depth = if i < 20 { 2 } else { next(6) as u32 };
        let len = 1 + next(70) as usize;
        let label: String =
            std::iter::repeat_n(['W', 'é', 'i', 'm'][i as usize % 4], len).collect();
        g.nodes.push(Node {
            id: format!("tool:{i}:{label}"),
            kind: NodeKind::Tool,
            label,
            depth,
            traces: 1,
            stats: Stats::default(),
            span_ids: Vec::new(),
        });
    }
    for _ in 0..120 {
        let (a, b) = (next(50) as usize, next(50) as usize);
        g.edges.push(Edge {
            from: g.nodes[a].id.clone(),
            to: g.nodes[b].id.clone(),
            handoff: false,
            traces: 1,
            stats: Stats::default(),
            span_ids: Vec::new(),
        });
    }
    let l = layout(&g);
    assert_eq!(l.boxes.len(), 50);
    for (i, a) in l.boxes.iter().enumerate() {
        let chars = g.nodes[i]
            .label
            .chars()
            .count()
            .min(layout::MAX_LABEL_CHARS) as f64;
        assert!(a.width >= chars * layout::CHAR_WIDTH + 2.0 * layout::PAD_X);
        assert!(a.x >= 0.0 && a.y >= 0.0);
        assert!(a.x + a.width <= l.width && a.y + a.height <= l.height);
        for (j, b) in l.boxes.iter().enumerate().skip(i + 1) {
            assert!(!a.overlaps(b), "{i} {a:?} overlaps {j} {b:?}");
        }
    }
}
