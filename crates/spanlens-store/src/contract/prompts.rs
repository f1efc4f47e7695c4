//! The trace list's prompt filter: traces holding a span that used a prompt template (and a
//! version of it), as `spanlens_core::prompts` names them, on every store alike.

use super::build::*;
use super::{fresh, StoreHarness};
use crate::prelude::*;
use crate::ListQuery;
use spanlens_core::span::PromptTemplate;
use spanlens_core::{Span, Status};
use std::collections::BTreeSet;

const TRACES: u64 = 12;

fn with_prompt(mut s: Span, name: Option<&str>, version: Option<&str>) -> Span {
    s.prompt = Some(PromptTemplate {
        name: name.map(str::to_string),
        version: version.map(str::to_string),
        template: Some("Answer {question}".into()),
        ..Default::default()
    });
    s
}

/// Trace `i`: a root and a model call using `answer` version 1 (`i % 3 == 0`), version 2
/// (`i % 3 == 1`) or no prompt (`i % 3 == 2`); trace 4 also a nameless template (known by its
/// span's name, `summarize.step`) in version `a`; trace 11 `answe` in version `r2` (which must
/// not pass for `answer` 2); every fourth trace (from 1) failed.
fn spans_of(i: u64) -> Vec<Span> {
    let mut root = span(i, i * 10, None, &format!("ask {i}"), i * 1000, 500);
    if i % 4 == 1 {
        root.status = Status::Error;
    }
    let call = llm(
        i,
        i * 10 + 1,
        Some(i * 10),
        "gpt-4o",
        "openai",
        i * 1000 + 10,
        100,
        5,
        5,
        1,
    );
    let call = match (i % 3, i) {
        (_, 11) => with_prompt(call, Some("answe"), Some("r2")),
        (0, _) => with_prompt(call, Some("answer"), Some("1")),
        (1, _) => with_prompt(call, Some("answer"), Some("2")),
        _ => call,
    };
    let mut out = vec![root, call];
    if i == 4 {
        let step = span(
            i,
            i * 10 + 2,
            Some(i * 10),
            "summarize.step",
            i * 1000 + 200,
            50,
        );
        out.push(with_prompt(step, None, Some("a")));
    }
    out
}

async fn found(store: &dyn Store, set: impl Fn(&mut ListQuery)) -> BTreeSet<u64> {
    let mut q = ListQuery::new("p");
    set(&mut q);
    q.limit = 5;
    let mut out = BTreeSet::new();
    for _ in 0..50 {
        let page = store.list_traces(&q).await.unwrap();
        for t in &page.items {
            let n = u64::from_be_bytes(t.trace_id.0[8..].try_into().unwrap()) - 1;
            assert!(out.insert(n), "trace {n} came twice");
        }
        match page.next_cursor {
            Some(c) => q.cursor = Some(c),
            None => break,
        }
    }
    // The outcome counts leave the status filter out (they count failed ones among all).
    if q.filter.status.is_none() {
        let counted = store.trace_outcomes(&q).await.unwrap().traces;
        assert_eq!(
            counted,
            out.len() as u64,
            "the outcome count agrees with the list"
        );
    }
    out
}

fn numbers(f: impl Fn(u64) -> bool) -> BTreeSet<u64> {
    (0..TRACES).filter(|i| f(*i)).collect()
}

fn prompt(name: &str, version: Option<&str>) -> impl Fn(&mut ListQuery) {
    let (name, version) = (name.to_string(), version.map(str::to_string));
    move |q| {
        q.filter.prompt = Some(name.clone());
        q.filter.prompt_version = version.clone();
    }
}

/// By template, by template and version, any template; with other filters; a nameless
/// template by its span's name; after a trace is rebuilt from its stored spans (a span sent
/// again), and after the span that used the prompt is sent again without it.
pub async fn the_list_filters_by_prompt_template_and_version(h: &dyn StoreHarness) {
    let (_db, store) = fresh(h).await;
    let all: Vec<Span> = (0..TRACES).flat_map(spans_of).collect();
    for chunk in all.chunks(7) {
        store.write("p", chunk.to_vec()).await.unwrap();
    }
    let answer = numbers(|i| i % 3 != 2 && i != 11);
    assert_eq!(found(&*store, prompt("answer", None)).await, answer);
    assert_eq!(
        found(&*store, prompt("answer", Some("1"))).await,
        numbers(|i| i % 3 == 0)
    );
    assert_eq!(
        found(&*store, prompt("answer", Some("2"))).await,
        numbers(|i| i % 3 == 1 && i != 11)
    );
    assert_eq!(
        found(&*store, prompt("answe", Some("r2"))).await,
        [11].into()
    );
    assert_eq!(found(&*store, prompt("answe", None)).await, [11].into());
    assert_eq!(
        found(&*store, prompt("summarize.step", Some("a"))).await,
        [4].into()
    );
    assert!(found(&*store, prompt("answer", Some("3"))).await.is_empty());
    assert!(
        found(&*store, prompt("Answer", None)).await.is_empty(),
        "exact names"
    );
    assert_eq!(
        found(&*store, |q| q.filter.has_prompt = true).await,
        numbers(|i| i % 3 != 2 || i == 11)
    );
    // With another filter.
    assert_eq!(
        found(&*store, |q| {
            prompt("answer", Some("2"))(q);
            q.filter.status = Some(Status::Error);
        })
        .await,
        numbers(|i| i % 3 == 1 && i != 11 && i % 4 == 1)
    );

    // Trace 3's root sent again: the trace is rebuilt from its stored spans and keeps its prompt.
    let mut root = spans_of(3).remove(0);
    root.name = "ask again".into();
    store.write("p", vec![root]).await.unwrap();
    assert!(found(&*store, prompt("answer", Some("1")))
        .await
        .contains(&3));
    // Its call sent again without the prompt: the trace no longer used it.
    let mut call = spans_of(3).remove(1);
    call.prompt = None;
    store.write("p", vec![call]).await.unwrap();
    let v1 = found(&*store, prompt("answer", Some("1"))).await;
    assert!(!v1.contains(&3) && v1.contains(&0));
    assert!(!found(&*store, prompt("answer", None)).await.contains(&3));
}
