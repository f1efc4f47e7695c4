//! The generator's tests: determinism, ids, the window, prices, counts, scripts and traffic.

use super::*;
use crate::workflows::{CHATS, TICKETS};
use serde_json::{json, Value};
use spanlens_core::{CostSource, PriceCatalog, SpanId, SpanKind, Status};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

const NOW: Timestamp = Timestamp(1_767_225_600_000_000_000); // 2026-01-01T00:00:00Z

fn by_trace(spans: &[Span]) -> BTreeMap<TraceId, Vec<&Span>> {
    let mut m: BTreeMap<TraceId, Vec<&Span>> = BTreeMap::new();
    for s in spans {
        m.entry(s.trace_id).or_default().push(s);
    }
    m
}

#[test]
fn same_seed_same_output_and_ids_do_not_depend_on_now() {
    let a = generate(7, NOW);
    let b = generate(7, NOW);
    assert_eq!(a, b);
    let later = generate(7, Timestamp(NOW.0 + 3 * 3_600 * 1_000_000_000));
    let ids = |v: &[Span]| {
        v.iter()
            .map(|s| (s.trace_id, s.span_id))
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&a), ids(&later));
    assert_ne!(ids(&a), ids(&generate(8, NOW)));
    let traces: Vec<TraceId> = by_trace(&a).into_keys().collect();
    let mut listed = trace_ids(7);
    listed.sort();
    assert_eq!(listed, traces);
}

#[test]
fn ids_are_unique_and_parents_are_in_their_trace() {
    for seed in [1, 42, 2024] {
        let spans = generate(seed, NOW);
        let mut seen = HashSet::new();
        for s in &spans {
            assert!(
                seen.insert((s.trace_id, s.span_id)),
                "duplicate span {}",
                s.span_id
            );
        }
        for (tid, list) in by_trace(&spans) {
            let ids: HashMap<SpanId, &Span> = list.iter().map(|s| (s.span_id, *s)).collect();
            let roots = list.iter().filter(|s| s.parent_span_id.is_none()).count();
            assert_eq!(roots, 1, "trace {tid} has {roots} roots");
            for s in &list {
                if let Some(p) = s.parent_span_id {
                    let parent = ids
                        .get(&p)
                        .unwrap_or_else(|| panic!("{} has no parent in {tid}", s.name));
                    assert!(
                        parent.start_time <= s.start_time,
                        "{} starts before its parent",
                        s.name
                    );
                    assert!(
                        parent.end_time >= s.end_time,
                        "{} ends after its parent {}",
                        s.name,
                        parent.name
                    );
                }
            }
        }
    }
}

#[test]
fn every_span_lies_within_the_window() {
    for seed in [1, 42, 2024, 99_999] {
        let spans = generate(seed, NOW);
        let from = NOW.0 - DEMO_DAYS * 24 * 3_600 * 1_000_000_000;
        for s in &spans {
            let end = s.end_time.expect("every demo span has ended");
            assert!(
                s.start_time.0 >= from && end.0 <= NOW.0,
                "{} outside the window",
                s.name
            );
            assert!(end >= s.start_time);
            assert_eq!(s.source.as_deref(), Some(DEMO_SOURCE));
            assert!(SERVICES.contains(&s.service.as_deref().unwrap_or("")));
        }
    }
}

#[test]
fn llm_spans_are_priced_except_the_self_hosted_model() {
    let spans = generate(42, NOW);
    let mut unpriced = 0;
    let mut priced = 0;
    for s in spans
        .iter()
        .filter(|s| matches!(s.kind, SpanKind::Llm | SpanKind::Embedding))
    {
        let Some(u) = &s.usage else {
            assert_eq!(
                s.status,
                Status::Error,
                "{} without usage must be a failed call",
                s.name
            );
            continue;
        };
        assert!(u.cache_read_tokens + u.cache_write_tokens <= u.input_tokens);
        assert!(u.reasoning_tokens <= u.output_tokens);
        if s.request_model.as_deref() == Some(UNPRICED_MODEL) {
            assert!(s.cost.is_none());
            assert!(s
                .unpriced_reason
                .as_deref()
                .is_some_and(|r| r.contains(UNPRICED_MODEL)));
            unpriced += 1;
        } else {
            let c = s.cost.as_ref().unwrap_or_else(|| {
                panic!(
                    "{} ({:?}) unpriced: {:?}",
                    s.name, s.request_model, s.unpriced_reason
                )
            });
            assert!(c.amounts.total.0 > 0, "{} costs nothing", s.name);
            assert!(s.unpriced_reason.is_none());
            priced += 1;
        }
        if s.kind == SpanKind::Llm {
            let ttft = s.ttft_ns.expect("LLM spans carry TTFT");
            assert!(ttft <= s.duration_ns().unwrap_or(0));
        }
    }
    assert_eq!(unpriced, 1);
    assert!(priced > 500, "{priced} priced calls");
}

#[test]
fn counts_are_in_the_expected_ranges() {
    for seed in [1, 42, 2024, 7_777] {
        let spans = generate(seed, NOW);
        let traces = by_trace(&spans);
        assert!(
            (600..=800).contains(&traces.len()),
            "{} traces",
            traces.len()
        );
        let users: BTreeSet<_> = spans.iter().filter_map(|s| s.user_id.as_deref()).collect();
        assert_eq!(users.len(), 10);
        let sessions: BTreeSet<_> = spans
            .iter()
            .filter_map(|s| s.session_id.as_deref())
            .collect();
        assert_eq!(sessions.len(), CHAT_SESSIONS + SUPPORT_THREADS);
        let services: BTreeSet<_> = spans.iter().filter_map(|s| s.service.as_deref()).collect();
        assert_eq!(services.len(), 5);
        let providers: BTreeSet<_> = spans.iter().filter_map(|s| s.provider.as_deref()).collect();
        for p in ["openai", "anthropic", "google", "mistral", "vllm"] {
            assert!(providers.contains(p), "no {p} call");
        }
        let models: BTreeSet<_> = spans
            .iter()
            .filter_map(|s| s.request_model.as_deref())
            .collect();
        assert!(models.len() >= 8, "{models:?}");
        let errors = traces
            .values()
            .filter(|t| {
                t.iter()
                    .any(|s| s.parent_span_id.is_none() && s.status == Status::Error)
            })
            .count();
        assert!((10..=150).contains(&errors), "{errors} failed traces");
        let cache_write = spans
            .iter()
            .filter_map(|s| s.usage.as_ref())
            .any(|u| u.cache_write_tokens > 0);
        let cache_read = spans
            .iter()
            .filter_map(|s| s.usage.as_ref())
            .any(|u| u.cache_read_tokens > 0);
        let reasoning = spans
            .iter()
            .filter_map(|s| s.usage.as_ref())
            .any(|u| u.reasoning_tokens > 0);
        assert!(cache_write && cache_read && reasoning);
        assert!(spans.iter().any(|s| s.rate_limits.is_some()));
        assert!(spans.iter().any(|s| s.prompt.is_some()));
        assert!(spans
            .iter()
            .any(|s| s.error_type.as_deref() == Some("RateLimitError")));
        assert!(spans
            .iter()
            .any(|s| s.error_type.as_deref() == Some("TimeoutError")));
        // Multi-turn sessions: some session has at least three traces.
        let mut per_session: HashMap<&str, BTreeSet<TraceId>> = HashMap::new();
        for s in &spans {
            if let Some(sid) = s.session_id.as_deref() {
                per_session.entry(sid).or_default().insert(s.trace_id);
            }
        }
        assert!(per_session.values().any(|t| t.len() >= 3));
    }
}

/// The root spans of each session's traces in time order, as (input, output or None).
fn session_turns(spans: &[Span], prefix: &str) -> BTreeMap<String, Vec<(Value, Option<Value>)>> {
    let mut roots: Vec<&Span> = spans
        .iter()
        .filter(|s| s.parent_span_id.is_none())
        .filter(|s| {
            s.session_id
                .as_deref()
                .is_some_and(|id| id.starts_with(prefix))
        })
        .collect();
    roots.sort_by_key(|s| s.start_time);
    let mut out: BTreeMap<String, Vec<(Value, Option<Value>)>> = BTreeMap::new();
    for r in roots {
        out.entry(r.session_id.clone().unwrap()).or_default().push((
            r.input.as_ref().unwrap().value.clone(),
            r.output.as_ref().map(|p| p.value.clone()),
        ));
    }
    out
}

#[test]
fn each_turn_of_a_session_answers_its_own_question() {
    for seed in [DEFAULT_SEED, 1, 42] {
        let spans = generate(seed, NOW);
        // Chat: each answer is the one written for its question, and after a failed turn
        // the user asks the same question again; otherwise the next one of the same chat.
        let chats = session_turns(&spans, "chat_");
        assert_eq!(chats.len(), CHAT_SESSIONS);
        for (id, turns) in &chats {
            let first = turns[0].0.as_str().unwrap();
            let (_, script) = CHATS
                .iter()
                .find(|(_, t)| t[0].0 == first)
                .unwrap_or_else(|| panic!("{id} opens with {first:?}"));
            let mut asked = 0;
            for (question, answer) in turns {
                assert_eq!(question, script[asked].0, "{id}");
                if let Some(a) = answer {
                    assert_eq!(a, script[asked].1, "{id}: the answer to {question}");
                    asked += 1;
                }
            }
        }
        // Support: the ticket, then its follow-ups in order, each reply answering it; a
        // message left unanswered is sent again.
        let threads = session_turns(&spans, "ticket-");
        assert_eq!(threads.len(), SUPPORT_THREADS);
        let mut resent = 0;
        for (id, turns) in &threads {
            let first = turns[0].0["message"].as_str().unwrap();
            let ticket = TICKETS
                .iter()
                .find(|t| t.message == first)
                .unwrap_or_else(|| panic!("{id} opens with {first:?}"));
            let mut asked = 0;
            for (k, (message, reply)) in turns.iter().enumerate() {
                let (question, answer) = if asked == 0 {
                    (ticket.message, ticket.reply)
                } else {
                    ticket.follow_ups[asked - 1]
                };
                assert_eq!(message["message"], question, "{id} turn {k}");
                match reply {
                    Some(r) => {
                        let text = r["reply"].as_str().unwrap();
                        assert!(
                            text.contains(answer),
                            "{id} turn {k}: {question:?} answered with {text:?}"
                        );
                        asked += 1;
                    }
                    None => resent += usize::from(k + 1 < turns.len()),
                }
            }
        }
        // The demo's rate-limit incident fails a thread's first message, which is then sent
        // again.
        assert!(resent > 0, "seed {seed}: no message was sent again");
    }
}

#[test]
fn there_are_parallel_agents_and_retries() {
    let spans = generate(42, NOW);
    let overlapping = by_trace(&spans).values().any(|list| {
        let agents: Vec<&&Span> = list.iter().filter(|s| s.kind == SpanKind::Agent).collect();
        agents.iter().enumerate().any(|(i, a)| {
            agents[i + 1..].iter().any(|b| {
                a.parent_span_id == b.parent_span_id
                    && a.start_time < b.end_time.unwrap()
                    && b.start_time < a.end_time.unwrap()
            })
        })
    });
    assert!(overlapping, "no trace with overlapping sibling agents");
    let retried: Vec<&Span> = spans
        .iter()
        .filter(|s| s.events.iter().any(|e| e.name == "retry"))
        .collect();
    assert!(!retried.is_empty());
    for s in &retried {
        let r = s.events.iter().find(|e| e.name == "retry").unwrap();
        for key in [
            "retry.attempt",
            "error.type",
            "error.message",
            "retry.backoff_ms",
        ] {
            assert!(r.attributes.contains_key(key), "retry event without {key}");
        }
        assert!(
            s.events.iter().any(|e| e.name == "retry.outcome"),
            "{} has no retry.outcome",
            s.name
        );
    }
    let exhausted = spans.iter().any(|s| {
        s.status == Status::Error
            && s.events.iter().any(|e| {
                e.name == "retry.outcome"
                    && e.attributes.get("retry.succeeded") == Some(&json!(false))
            })
    });
    assert!(exhausted);
    // Agent names are propagated to the agents' children.
    assert!(spans
        .iter()
        .any(|s| s.kind == SpanKind::Llm && s.agent_name.as_deref() == Some("researcher_agent")));
}

/// Traces per UTC day (the days the window covers entirely) and the day's cost.
fn per_day(spans: &[Span], now: Timestamp) -> BTreeMap<u64, (usize, i64)> {
    const DAY: u64 = 86_400_000_000_000;
    let first = (now.0 - DEMO_DAYS * DAY) / DAY + 1;
    let last = now.0 / DAY - 1;
    let mut days: BTreeMap<u64, (usize, i64)> = (first..=last).map(|d| (d, (0, 0))).collect();
    for s in spans {
        let Some(d) = days.get_mut(&(s.start_time.0 / DAY)) else {
            continue;
        };
        if s.parent_span_id.is_none() {
            d.0 += 1;
        }
        d.1 += s.cost.as_ref().map_or(0, |c| c.amounts.total.0);
    }
    days
}

#[test]
fn traffic_has_a_weekly_pattern_and_grows() {
    // Noon, and midnight: the window's partial first and last days fall differently.
    for now in [Timestamp(NOW.0 + 12 * 3_600 * 1_000_000_000), NOW] {
        for seed in [1, 42, 2024] {
            let days = per_day(&generate(seed, now), now);
            assert!(days.len() >= 26, "{} complete days", days.len());
            let (mut weekday, mut weekend) = ((0usize, 0i64, 0usize), (0usize, 0i64, 0usize));
            for (d, (traces, cost)) in &days {
                // 1970-01-01 was a Thursday; Saturday and Sunday are 5 and 6 from Monday.
                let acc = if (d + 3) % 7 >= 5 {
                    &mut weekend
                } else {
                    &mut weekday
                };
                acc.0 += traces;
                acc.1 += cost;
                acc.2 += 1;
                assert!(*traces > 0, "day {d} has no trace");
            }
            let per = |a: (usize, i64, usize)| (a.0 as f64 / a.2 as f64, a.1 as f64 / a.2 as f64);
            let (wd, we) = (per(weekday), per(weekend));
            assert!(
                wd.0 > 2.0 * we.0,
                "traces per weekday {} vs weekend day {}",
                wd.0,
                we.0
            );
            assert!(
                wd.1 > 1.5 * we.1,
                "cost per weekday {} vs weekend day {}",
                wd.1,
                we.1
            );
            // Growth: the last two weeks are busier than the two before.
            let v: Vec<usize> = days.values().map(|d| d.0).collect();
            let half = v.len() / 2;
            let (early, late) = (
                v[..half].iter().sum::<usize>(),
                v[v.len() - half..].iter().sum::<usize>(),
            );
            assert!(
                late > early,
                "first half {early} traces, second half {late}"
            );
        }
    }
}

#[test]
fn traffic_placement_stays_in_its_bounds() {
    let t = Traffic::new(NOW.0 - WINDOW_MS * NS_PER_MS);
    for (lo, hi) in [
        (EARLY_MS, WINDOW_MS - LATE_MS),
        (5 * HOUR + 17, 5 * HOUR + 18),
        (0, 1),
    ] {
        for u in [0.0, 0.25, 0.5, 0.999_999, 1.0] {
            let at = t.place(lo, hi, u);
            assert!(
                at >= lo && at < hi.max(lo + 1),
                "{at} outside {lo}..{hi} for u={u}"
            );
        }
    }
    // Monotone in u: more weight before means later.
    let a = t.place(EARLY_MS, WINDOW_MS - LATE_MS, 0.3);
    let b = t.place(EARLY_MS, WINDOW_MS - LATE_MS, 0.6);
    assert!(a < b);
}

#[test]
fn gateway_calls_report_their_bill_and_one_model_differs() {
    let spans = generate(42, NOW);
    let catalog = PriceCatalog::builtin();
    let mut rec = spanlens_core::Reconciliation::default();
    let mut calls = 0;
    for s in spans.iter().filter(|s| s.kind == SpanKind::Llm) {
        let reported = s
            .cost
            .as_ref()
            .is_some_and(|c| c.source == CostSource::Reported);
        let through_gateway = s.service.as_deref() == Some(GATEWAY_SERVICE) && s.usage.is_some();
        assert_eq!(reported, through_gateway, "{} of {:?}", s.name, s.service);
        if reported {
            // The catalog's own price is kept beside the bill.
            assert!(s.cost.as_ref().unwrap().computed.is_some());
        }
        calls += 1;
        rec.add(s, catalog);
    }
    let rows = rec.rows();
    assert!(rows.len() >= 3, "{rows:?}");
    let total = rec.total();
    assert!(
        total.spans * 20 > calls && total.spans * 4 < calls,
        "{} of {calls} calls report a cost",
        total.spans
    );
    for r in &rows {
        let pct = r.difference_pct().unwrap();
        if r.model == ONE_HOUR_CACHE_MODEL {
            assert!((5.0..30.0).contains(&pct), "{}: {pct}%", r.model);
        } else {
            assert_eq!(r.difference().0, 0, "{}: {pct}%", r.model);
        }
    }
    assert!(rows.iter().any(|r| r.model == ONE_HOUR_CACHE_MODEL));
}

/// FNV-1a (64 bits): a small hash that is the same on every platform and Rust version.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Pins the output across the move of the generator out of `spanlens-server` into this crate:
/// the count and hash were computed on the old `spanlens_server::demo` before the move, so any
/// change to the generated data (a different draw order, a changed text) fails here. Change
/// the numbers only when the demo data is changed on purpose.
#[test]
fn output_is_pinned_for_the_default_seed() {
    let spans = generate(DEFAULT_SEED, NOW);
    let text = serde_json::to_string(&spans).unwrap();
    assert_eq!(spans.len(), 6515);
    assert_eq!(text.len(), 8_951_304);
    assert_eq!(fnv1a(text.as_bytes()), 0x4e7a_e7cb_c4ce_a5c9);
}
