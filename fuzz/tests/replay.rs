//! Replays every fuzz target's function over every file of its corpus (`corpus/<target>/`) and
//! its kept reproducers (`artifacts/<target>/`), on stable Rust:
//!
//! ```sh
//! cargo test --manifest-path fuzz/Cargo.toml --locked --no-default-features
//! ```
//!
//! A corpus file that makes its target panic fails the test; inputs that only reach a known
//! defect class (`src/known.rs`) pass, as they do while fuzzing, since many corpus inputs reach
//! one. The reproducers under `artifacts/` run strictly: each fails the test unless
//! `known.txt` lists it with the tag of its known defect and it panics with that tag. A listed
//! file that no longer fails is reported (the defect is fixed: drop the line).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::Instant;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// `known.txt`: `<path under fuzz/> <tag> <reason…>` per line; `#` starts a comment.
fn known() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(Path::new(ROOT).join("known.txt")).expect("known.txt");
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut parts = l.split_whitespace();
            let path = parts.next().expect("a path").to_string();
            let tag = parts.next().expect("a tag after the path").to_string();
            assert!(
                (tag.starts_with("[K") || tag.starts_with("[F")) && tag.ends_with(']'),
                "known.txt: {path}: tag {tag:?} is not of the form [K<n>] or [F<n>]"
            );
            (path, tag)
        })
        .collect()
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect(),
        Err(_) => Vec::new(),
    };
    out.sort();
    out
}

thread_local! {
    /// Set while a target runs: its panic is kept for the report instead of printed.
    static CAPTURING: Cell<bool> = const { Cell::new(false) };
    /// The message of the last captured panic on this thread.
    static LAST_PANIC: RefCell<String> = const { RefCell::new(String::new()) };
}

fn quiet_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !CAPTURING.with(Cell::get) {
                return default(info);
            }
            let msg = info
                .payload()
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| info.payload().downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "(no message)".into());
            let at = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            LAST_PANIC.with(|p| *p.borrow_mut() = format!("{msg}{at}"));
        }));
    });
}

/// Runs one input with its panic captured: `Err(message)` when it panicked.
fn run_captured(run: fn(&[u8]), data: &[u8]) -> Result<(), String> {
    CAPTURING.with(|c| c.set(true));
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| run(data)));
    CAPTURING.with(|c| c.set(false));
    outcome.map_err(|_| LAST_PANIC.with(|p| p.take()))
}

fn replay(name: &str) {
    quiet_panics();
    let (_, run) = spanlens_fuzz::TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .expect("a target of that name");
    let known = known();
    let root = Path::new(ROOT);
    let mut inputs = files(&root.join("corpus").join(name));
    let corpus_files = inputs.len();
    inputs.extend(files(&root.join("artifacts").join(name)));
    assert!(corpus_files > 0, "{name}: empty corpus");
    let started = Instant::now();
    let mut failures = Vec::new();
    let mut known_hits = 0;
    for (i, path) in inputs.iter().enumerate() {
        spanlens_fuzz::known::set_skipping(i < corpus_files);
        let rel = path
            .strip_prefix(root)
            .expect("under fuzz/")
            .to_string_lossy()
            .into_owned();
        // A running fuzzer may replace corpus files under the test's feet.
        let Ok(data) = std::fs::read(path) else {
            continue;
        };
        match (run_captured(*run, &data), known.get(&rel)) {
            (Ok(()), None) => {}
            (Ok(()), Some(tag)) => {
                eprintln!("{rel}: listed in known.txt as {tag} but no longer fails: drop its line");
            }
            (Err(msg), Some(tag)) => {
                if msg.starts_with(tag.as_str()) {
                    known_hits += 1;
                } else {
                    failures.push(format!("{rel}: expected {tag}, got: {msg}"));
                }
            }
            (Err(msg), None) => failures.push(format!("{rel}: {msg}")),
        }
    }
    eprintln!(
        "{name}: {} inputs ({corpus_files} corpus, {} artifacts) in {:.2?}, {known_hits} known defects",
        inputs.len(),
        inputs.len() - corpus_files,
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{name}: {} finding(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

macro_rules! replay_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                replay(stringify!($name));
            }
        )*

        #[test]
        fn every_target_is_replayed() {
            let tested = [$(stringify!($name)),*];
            for (name, _) in spanlens_fuzz::TARGETS {
                assert!(tested.contains(name), "{name} has no replay test");
            }
        }
    };
}

replay_tests!(
    decode_otlp_proto,
    decode_otlp_json,
    decode_agents,
    decode_gzip,
    normalize_otlp_proto,
    normalize_otlp_json,
    normalize_agents,
    ingest_otlp_proto,
    ingest_otlp_json,
    ingest_agents,
    ingest_grpc,
);
