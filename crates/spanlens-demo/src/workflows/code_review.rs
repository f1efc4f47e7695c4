//! Code review (`code-review-agent`): a reviewer agent in a model → tool loop.

use super::{Gen, USERS};
use crate::models::{CLAUDE_SONNET_4, O4_MINI};
use crate::trace::{meta, msg, tags, template, tool_call, Call, Ctx, Retry, ToolCall};
use crate::{CODE_REVIEWS, MINUTE, SEC};
use serde_json::{json, Value};
use spanlens_core::{Message, SpanKind};

const REPOS: [&str; 4] = [
    "acme/payments-api",
    "acme/web-app",
    "acme/infra",
    "acme/ml-pipelines",
];

const PR_TITLES: [&str; 8] = [
    "Add idempotency keys to the refund endpoint",
    "Migrate the session store to a Redis cluster",
    "Fix race in the webhook retry scheduler",
    "Paginate /v2/invoices with cursors",
    "Cache feature flags per request",
    "Split the VPC module per region",
    "Vectorise feature extraction in the ranker",
    "Drop async-trait now that the MSRV allows it",
];

const FILES: [&str; 8] = [
    "src/refunds/handler.rs",
    "src/webhooks/scheduler.rs",
    "migrations/0042_idempotency_keys.sql",
    "web/src/pages/Reports.tsx",
    "modules/vpc/main.tf",
    "pipelines/ranker/features.py",
    "tests/integration/refunds_test.rs",
    "src/flags/cache.rs",
];

const FINDINGS: [&str; 6] = [
    "The idempotency check runs after the charge lookup and outside the transaction: two concurrent refunds can both pass.",
    "The new cursor query needs an index on invoices(customer_id, created_at).",
    "The retry loop has no jitter, so every webhook fires again in the same second after an outage.",
    "This Vec grows without bound on the batch path; cap it or stream the rows.",
    "Error from the cache lookup is swallowed; log it at least once per minute.",
    "Looks good overall; add a test for the empty-page case.",
];

impl Gen {
    /// Code review: a reviewer agent loops model → tool until it can post its review.
    pub(crate) fn code_review(&mut self, k: usize) {
        let repo = self.rng.pick(&REPOS);
        let pr = self.rng.range(1_200, 4_800);
        let title = self.rng.pick(&PR_TITLES);
        let user = self.rng.pick(&USERS);
        let sha = self.rng.hex(40);
        let t0 = self.place(k, CODE_REVIEWS, 20 * MINUTE);
        let use_o4 = self.rng.chance(0.6);
        let ctx = Ctx {
            service: "code-review-agent",
            user: Some(user.to_string()),
            session: None,
            tags: tags(&[
                "code-review",
                repo,
                if use_o4 { "o4-mini" } else { "claude" },
            ]),
            metadata: meta(
                json!({"repo": repo, "pr_number": pr, "base_branch": "main", "head_sha": sha, "trigger": "pull_request.opened"}),
            ),
            incident: false,
        };
        let mut t = self.trace(t0);
        let root = t.open(None, "review_pull_request", SpanKind::Pipeline, 0);
        t.input(root, json!({"repo": repo, "pr": pr, "title": title}));
        let files = t.rng.range(2, 9);
        let meta_pr = json!({"title": title, "author": user, "files_changed": files, "additions": t.rng.range(20, 600), "deletions": t.rng.range(0, 250)});
        let fetch = t.tool(
            root,
            3,
            ToolCall {
                name: "github.get_pull_request",
                description: "Fetches the pull request and its diff",
                args: json!({"repo": repo, "number": pr}),
                result: meta_pr,
                duration_ms: (150, 600),
                call_id: None,
                retry: None,
            },
        );
        let agent = t.open(Some(root), "reviewer_agent", SpanKind::Agent, fetch.end + 1);
        let model = if use_o4 { O4_MINI } else { CLAUDE_SONNET_4 };
        let steps = t.rng.range(3, 7);
        let tests_at = t.rng.range(1, steps - 1);
        let mut at = fetch.end + 3;
        let mut context = 4_200 + t.rng.range(0, 2_000);
        let mut failed = None;
        let mut findings = Vec::new();
        for step in 0..steps {
            let (tool, args, result, dur, desc): (
                &'static str,
                Value,
                Value,
                (u64, u64),
                &'static str,
            ) = if step == tests_at {
                (
                    "ci.run_tests",
                    json!({"repo": repo, "sha": sha, "suite": "integration"}),
                    json!({"passed": t.rng.range(180, 900), "failed": 0, "skipped": t.rng.range(0, 12)}),
                    (20 * SEC, 90 * SEC),
                    "Runs the test suite in CI and waits for the result",
                )
            } else {
                match t.rng.below(3) {
                    0 => {
                        let f = t.rng.pick(&FILES);
                        (
                            "repo.read_file",
                            json!({"path": f, "ref": sha}),
                            json!({"path": f, "lines": t.rng.range(40, 900), "truncated": false}),
                            (20, 120),
                            "Reads a file at the PR's head commit",
                        )
                    }
                    1 => (
                        "repo.grep",
                        json!({"pattern": "fn refund|idempotency_key", "path": "src/"}),
                        json!({"matches": t.rng.range(1, 14)}),
                        (40, 300),
                        "Searches the repository",
                    ),
                    _ => (
                        "github.get_diff",
                        json!({"repo": repo, "number": pr, "file": t.rng.pick(&FILES)}),
                        json!({"hunks": t.rng.range(1, 6)}),
                        (100, 400),
                        "Reads one file's diff",
                    ),
                }
            };
            let id = format!("call_{}", t.rng.hex(24));
            let mut c = Call::new("reviewer.step", model, context, t.rng.range(60, 260));
            c.prefix = context.saturating_sub(1_500);
            c.warm = step > 0;
            c.max_tokens = 4_096;
            c.temperature = if use_o4 { 1.0 } else { 0.2 };
            c.messages = vec![msg(
                "user",
                format!("Review {repo}#{pr}: {title}. Step {}.", step + 1),
            )];
            c.reply = Message {
                content: Some(format!("Next I'll use {tool}.")),
                tool_calls: vec![tool_call(&id, tool, &args)],
                ..Default::default()
            };
            if step == 0 {
                c.prompt = Some(template(
                    "code-review/system",
                    "v12",
                    "You review pull requests for {{repo}}. Focus on correctness, concurrency and security. Use tools to read code and run tests before commenting.",
                    json!({"repo": repo}),
                ));
            }
            let call = t.llm(agent, at, c);
            let retry = if tool == "ci.run_tests" {
                // The first review always shows a flaky run, so the demo has a retry to look at.
                let roll = if k == 0 { 0.2 } else { t.rng.unit() };
                if roll < 0.10 {
                    Some(Retry {
                        fails: 3,
                        exhausted: true,
                        error_type: "TimeoutError",
                        message: "ci: integration suite did not finish within 120 s".into(),
                        attempt_ms: (120 * SEC, 120 * SEC),
                        backoff_ms: 2_000,
                        retry_after_ms: None,
                    })
                } else if roll < 0.40 {
                    Some(Retry {
                        fails: 1 + u64::from(t.rng.chance(0.4)),
                        exhausted: false,
                        error_type: "TestFlakeError",
                        message:
                            "ci: test refunds::concurrent_refunds failed (flaky: passed on retry)"
                                .into(),
                        attempt_ms: (15 * SEC, 40 * SEC),
                        backoff_ms: 2_000,
                        retry_after_ms: None,
                    })
                } else {
                    None
                }
            } else {
                None
            };
            let done = t.tool(
                agent,
                call.end + 1,
                ToolCall {
                    name: tool,
                    description: desc,
                    args,
                    result,
                    duration_ms: dur,
                    call_id: Some(id),
                    retry,
                },
            );
            at = done.end + 2;
            context += t.rng.range(800, 2_200);
            if !done.ok {
                failed = Some(done);
                break;
            }
            if step % 2 == 0 {
                findings.push(t.rng.pick(&FINDINGS));
            }
        }
        let end = if let Some(f) = failed {
            t.fail(
                agent,
                "TimeoutError",
                "review aborted: the integration tests never finished",
            );
            t.close(agent, f.end + 1);
            t.fail(
                root,
                "TimeoutError",
                "ci: integration suite did not finish within 120 s (gave up after 3 attempts)",
            );
            f.end + 2
        } else {
            let review = json!({"verdict": if findings.len() > 2 { "request_changes" } else { "comment" }, "comments": findings});
            let mut c = Call::new("reviewer.summarize", model, context, t.rng.range(300, 700));
            c.prefix = context.saturating_sub(1_500);
            c.warm = true;
            c.max_tokens = 4_096;
            c.json_schema = Some("review");
            c.messages = vec![msg("user", "Summarise your findings as review comments.")];
            c.reply = msg("assistant", review.to_string());
            let s = t.llm(agent, at, c);
            let limited = t.rng.chance(0.15);
            let review_id = t.rng.range(1_000_000, 9_999_999);
            let wait = t.rng.range(3, 30) * SEC;
            let post = t.tool(agent, s.end + 1, ToolCall {
                name: "github.post_review",
                description: "Posts the review on the pull request",
                args: json!({"repo": repo, "number": pr, "event": review["verdict"], "comments": findings.len()}),
                result: json!({"id": review_id, "state": "COMMENTED"}),
                duration_ms: (200, 700),
                call_id: None,
                retry: limited.then(|| Retry {
                    fails: 1,
                    exhausted: false,
                    error_type: "RateLimitError",
                    message: "github: 403 You have exceeded a secondary rate limit".into(),
                    attempt_ms: (100, 300),
                    backoff_ms: 3_000,
                    retry_after_ms: Some(wait),
                }),
            });
            t.output(agent, review.clone());
            t.close(agent, post.end + 1);
            t.output(root, review);
            post.end + 2
        };
        t.close(root, end);
        let spans = t.finish(&ctx);
        self.spans.extend(spans);
    }
}
